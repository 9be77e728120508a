"""A run folder archived twice within one second (a quick restart after a kill) gets a numbered archive name."""
from converse_basicsr.training import pipeline


def test_archives_within_one_second_get_numbered_names(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, 'get_time_str', lambda: '20260101_000000')
    run = tmp_path / 'run'
    for i in range(3):
        run.mkdir(exist_ok=True)
        (run / 'log.txt').write_text(f'run {i}')
        pipeline.mkdir_and_rename(str(run))
        assert run.is_dir() and not any(run.iterdir())
    archives = sorted(p.name for p in tmp_path.iterdir() if p.name != 'run')
    assert archives == [
        'run_archived_20260101_000000', 'run_archived_20260101_000000_1', 'run_archived_20260101_000000_2'
    ]
    assert (tmp_path / 'run_archived_20260101_000000_2' / 'log.txt').read_text() == 'run 2'
