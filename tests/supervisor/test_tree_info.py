"""ChildInfo.walk / find: reading the tree an operator (or a test) sees."""

from ibkr_connector.supervisor import ChildInfo, ChildState


def _node(name: str, *children: ChildInfo) -> ChildInfo:
    kind = "supervisor" if children else "worker"
    return ChildInfo(name, kind, ChildState.RUNNING, 0, None, 1.0, 0, children)


def test_walk_visits_every_node_depth_first_in_start_order() -> None:
    tree = _node("root", _node("core", _node("bus"), _node("audit")), _node("control"))
    assert [n.name for n in tree.walk()] == ["root", "core", "bus", "audit", "control"]


def test_find_returns_the_named_node_or_none() -> None:
    tree = _node("root", _node("core", _node("bus")))
    bus = tree.find("bus")
    assert bus is not None and bus.kind == "worker"
    assert tree.find("nosuch") is None
