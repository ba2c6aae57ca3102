"""``autoscaler.expanders``: which scale-up option each expander takes, and the tie-break."""

from __future__ import annotations

from typing import Any

import pytest
from autoscaler_fakes import group_doc

from autoscaler.expanders import (
    CostExpander,
    Expander,
    LeastWasteExpander,
    Option,
    PriceExpander,
    PriorityExpander,
    expander_for,
)
from autoscaler.nodegroup import NodeGroup, config_from_dict


def config(**settings: Any) -> Any:
    names = ("general", "gpu-a10", "spot")
    return config_from_dict({"groups": [group_doc(n) for n in names], "settings": settings})


GROUPS: dict[str, NodeGroup] = {g.name: g for g in config().groups}


def option(
    group: str,
    *,
    nodes: int = 1,
    pods: int = 4,
    waste: float = 0.2,
    cost: float = 1.0,
    eci: float = 2.0,
) -> Option:
    return Option(GROUPS[group], nodes, pods, waste, waste, cost, eci)


@pytest.mark.parametrize(
    ("expander", "options", "chosen"),
    [
        (LeastWasteExpander(), [option("general", waste=0.5), option("spot", waste=0.1)], "spot"),
        (
            LeastWasteExpander(),
            [option("general"), option("spot", pods=6)],
            "spot",
        ),  # tie: more pods
        (LeastWasteExpander(), [option("spot"), option("general")], "general"),  # tie: by name
        (
            PriceExpander(),
            [option("general", cost=4.0), option("spot", cost=3.0, pods=2)],
            "general",
        ),
        (PriceExpander(), [option("general", pods=0, cost=0.1), option("spot", cost=8.0)], "spot"),
        (
            CostExpander(),
            [option("general", cost=3.0, eci=1.0), option("spot", cost=2.0, eci=2.5)],
            "spot",
        ),
        (
            PriorityExpander({10: ("gpu-.*",), 1: (".*",)}),
            [option("general", waste=0.0), option("gpu-a10", waste=0.9)],
            "gpu-a10",
        ),
        (
            PriorityExpander({5: ("nothing",)}),
            [option("general", waste=0.3), option("spot", waste=0.1)],
            "spot",
        ),
    ],
    ids=[
        "least-waste",
        "least-waste-more-pods",
        "least-waste-by-name",
        "price-per-pod",
        "price-skips-empty",
        "cost-net-of-eci",
        "priority-highest",
        "priority-falls-back",
    ],
)
def test_the_option_each_expander_takes(
    expander: Expander, options: list[Option], chosen: str
) -> None:
    choice = expander.choose(options)
    assert choice is not None
    assert choice[0].group.name == chosen
    assert choice[1].startswith(f"{expander.name}:")


@pytest.mark.parametrize(
    "expander",
    [LeastWasteExpander(), PriceExpander(), CostExpander(), PriorityExpander({})],
    ids=["least-waste", "price", "cost", "priority"],
)
def test_no_option_no_choice(expander: Expander) -> None:
    assert expander.choose([]) is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("least-waste", LeastWasteExpander),
        ("price", PriceExpander),
        ("priority", PriorityExpander),
        ("cost", CostExpander),
    ],
    ids=["least-waste", "price", "priority", "cost"],
)
def test_expander_for_the_settings(name: str, kind: type) -> None:
    chosen = expander_for(config(expander=name).settings)
    assert isinstance(chosen, kind)
    assert chosen.name == name


def test_priority_matches_whole_names_and_takes_the_highest_level() -> None:
    expander = PriorityExpander({10: ("gpu-.*",), 1: (".*",), 3: ("gpu",)})
    assert expander.priority("gpu-a10") == 10
    assert expander.priority("gpu") == 3
    assert expander.priority("general") == 1
    assert PriorityExpander({1: ("gen",)}).priority("general") is None
