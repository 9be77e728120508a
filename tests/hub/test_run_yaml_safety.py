"""The run YAML beside ``models/`` (someone else's run folder) is read by the package's one safe loader: an alias
bomb in it is refused (skipped, as an unreadable YAML is), never expanded into the network's arguments."""
from converse_basicsr.hub.description import run_yaml_network

BOMB = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + ''.join(f'{n}: &{n} [{", ".join(["*" + p] * 10)}]\n'
                                                          for p, n in zip('abcdef', 'bcdefg'))


def test_a_run_yaml_with_an_alias_bomb_is_skipped(tmp_path):
    (tmp_path / 'models').mkdir()
    checkpoint = tmp_path / 'models' / 'net_g_latest.pth'
    (tmp_path / 'run.yml').write_text('network_g:\n  type: ConverseDnCNN\n  num_feat: 8\n')
    assert run_yaml_network(checkpoint) == ('ConverseDnCNN', {'num_feat': 8}, str(tmp_path / 'run.yml'))
    (tmp_path / 'run.yml').write_text(BOMB + 'network_g:\n  type: ConverseDnCNN\n  num_feat: *g\n')
    assert run_yaml_network(checkpoint) is None
