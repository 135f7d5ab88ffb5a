"""The studio page builds without a browser and reports the bundled checkpoints."""

from studio.placeholder import build_page, status_markdown


def test_status_lists_checkpoints(tmp_path):
    assert "No bundled demo voice" in status_markdown(tmp_path)
    (tmp_path / "demo.pt").write_bytes(b"x")
    assert "demo.pt" in status_markdown(tmp_path)
    page = build_page(tmp_path)
    assert "demo.pt" in page[0].object
