from __future__ import annotations

from pathlib import Path

from tollhouse.catalog import load_catalog, load_catalog_text, starter_catalog_text


class TestStarterCatalog:
    def test_loads_cleanly(self) -> None:
        catalog = load_catalog_text(starter_catalog_text(), source="tollhouse.yaml")
        assert 2 <= len(catalog.plans) <= 3
        assert len(catalog.categories) == 2
        assert len(catalog.models) == 3
        assert catalog.default_plan == "free"

    def test_points_at_a_local_openai_compatible_server(self) -> None:
        catalog = load_catalog_text(starter_catalog_text())
        [upstream] = catalog.upstreams.values()
        assert upstream.base_url == "http://127.0.0.1:8000/v1"
        assert upstream.api_key_env is not None
        assert upstream.protocol == "openai"

    def test_is_commented(self) -> None:
        text = starter_catalog_text()
        assert text.startswith("#")
        assert sum(1 for line in text.splitlines() if "#" in line) >= 10

    def test_written_to_a_file_it_loads_again(self, tmp_path: Path) -> None:
        path = tmp_path / "tollhouse.yaml"
        path.write_text(starter_catalog_text(), encoding="utf-8")
        catalog = load_catalog(path)
        assert catalog.can_use("free", "qwen3-8b")
        assert not catalog.can_use("free", "qwen3-32b")
        assert catalog.limits_for("lifetime", "text").is_unlimited
