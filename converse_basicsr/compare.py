"""``converse-compare``: several models on one protocol, side by side (runner in
:mod:`converse_basicsr.evaluation.comparison`)."""
from converse_basicsr.evaluation.comparison import compare, load_model, main  # noqa: F401

if __name__ == '__main__':
    main()
