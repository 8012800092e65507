"""Files the user asks for by name get the mode any file they write gets; cellpipe's own data stays private."""

import os
import stat

from jupyter_ext.cli.main import main
from jupyter_ext.util import user_file_mode, write_atomic


def test_compile_output_has_the_normal_mode(notebooks, tmp_path, umask_022, capsys):
    out = tmp_path / "wine.yaml"
    assert main(["compile", str(notebooks / "wine_classifier.ipynb"), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert f"-> {out}" in capsys.readouterr().out


def test_private_by_default_user_mode_on_request(tmp_path, umask_022):
    write_atomic(tmp_path / "private", b"x")
    write_atomic(tmp_path / "shared", b"x", mode=user_file_mode())
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
    os.umask(0o027)
    assert user_file_mode() == 0o640
