"""Analytics fixtures: the playbooks' shop (tests/playbooks) is reused as is."""

from tests.playbooks.test_playbooks import shop  # noqa: F401  the `shop` fixture
