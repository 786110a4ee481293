"""The rollout decision: from spec, recorded status and observed workloads to actions."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.operator.factories import WORKLOADS, both, rolled_out, rolling, spec
from volatility_operator.observed import Report, WorkloadView
from volatility_operator.rollout import Decision, decide
from volatility_operator.status import Status, parse_status

T0 = 1_800_000_000.0


def step(decision: Decision) -> Status:
    """What the next pass reads back: the status as stored (through its dict form)."""
    return parse_status(decision.status.to_dict())


def test_a_new_resource_on_workloads_already_serving_it_is_ready_without_patching() -> None:
    d = decide(spec("baseline"), 1, Status(), both("baseline"), T0)
    assert d.patch == ()
    assert d.status.phase == "Ready"
    assert d.status.variant == "baseline"
    assert d.status.observed_generation == 1
    assert {c.type: c.status for c in d.status.conditions} == {
        "Ready": True,
        "Progressing": False,
        "Degraded": False,
    }
    assert [e.reason for e in d.events] == ["VariantSwitching", "VariantServing"]
    assert not d.busy


def test_switch_patches_every_workload_then_reports_ready_once_all_pods_serve() -> None:
    ready = step(decide(spec("baseline"), 1, Status(), both("baseline"), T0))
    d = decide(spec("ml"), 2, ready, both("baseline"), T0 + 10)
    assert d.patch == tuple(w.name for w in WORKLOADS)
    assert d.variant == "ml"
    assert d.status.phase == "Progressing"
    assert d.status.previous == "baseline"
    assert d.status.variant == "baseline"  # still what serves
    assert [e.type for e in d.events] == ["Normal", "Normal"]
    assert d.busy

    mid = [rolling("rel-api", "ml", "baseline"), rolled_out("rel-consumer", "ml")]
    d2 = decide(spec("ml"), 2, step(d), mid, T0 + 11)
    assert d2.patch == ()
    assert d2.status.phase == "Progressing"
    assert d2.events == ()  # no transition, no event
    assert "rel-api: 1/2 updated" in d2.status.message

    d3 = decide(spec("ml"), 2, step(d2), both("ml"), T0 + 12)
    assert d3.status.phase == "Ready"
    assert d3.status.variant == "ml"
    (switch,) = [s for s in d3.status.history if s.source == "baseline"]
    assert (switch.target, switch.trigger, switch.reason) == ("ml", "manual", "SpecChanged")
    assert [e.reason for e in d3.events] == ["VariantServing"]
    assert not d3.busy


def test_deciding_again_on_the_same_state_changes_nothing() -> None:
    ready = step(decide(spec("ml"), 2, Status(), both("ml"), T0))
    again = decide(spec("ml"), 2, ready, both("ml"), T0 + 30)
    assert again.patch == ()
    assert again.events == ()
    assert again.status.to_dict() == ready.to_dict()


def test_a_change_that_misses_its_deadline_is_reverted_and_held_until_the_spec_changes() -> None:
    ready = step(decide(spec("baseline"), 1, Status(), both("baseline"), T0))
    started = step(decide(spec("ml", deadline=30), 2, ready, both("baseline"), T0 + 1))
    stuck = [rolling("rel-api", "ml", "baseline"), rolling("rel-consumer", "ml", "baseline")]
    within = decide(spec("ml", deadline=30), 2, started, stuck, T0 + 30)
    assert within.status.phase == "Progressing"

    late = decide(spec("ml", deadline=30), 2, step(within), stuck, T0 + 32)
    assert late.status.phase == "Degraded"
    assert late.patch == ("rel-api", "rel-consumer")
    assert late.variant == "baseline"
    assert late.status.hold is not None
    assert late.status.hold.reason == "ProgressDeadlineExceeded"
    assert "ml not serving after 30s" in late.status.hold.message
    warning = [e for e in late.events if e.type == "Warning"]
    assert [e.reason for e in warning] == ["ProgressDeadlineExceeded"]
    degraded = late.status.condition("Degraded")
    assert (
        degraded is not None and degraded.status and degraded.reason == "ProgressDeadlineExceeded"
    )

    # The revert completes: baseline serves, the resource stays Degraded (the spec says ml).
    back = decide(spec("ml", deadline=30), 2, step(late), both("baseline"), T0 + 40)
    assert back.status.phase == "Degraded"
    assert back.status.variant == "baseline"
    assert back.patch == ()
    # It never retries ml on its own.
    later = decide(spec("ml", deadline=30), 2, step(back), both("baseline"), T0 + 400)
    assert later.patch == ()
    assert later.status.phase == "Degraded"

    # A person changes the spec (new generation): the hold ends, the new spec is followed.
    retry = decide(spec("ml", deadline=60), 3, step(later), both("baseline"), T0 + 500)
    assert retry.status.hold is None
    assert retry.patch == ("rel-api", "rel-consumer")
    assert retry.status.phase == "Progressing"


def test_a_missed_deadline_with_nothing_to_revert_to_is_degraded_without_patching() -> None:
    missing = [WorkloadView("rel-api", "api", exists=False), rolled_out("rel-consumer", "ml")]
    first = step(decide(spec("ml", deadline=10), 1, Status(), missing, T0))
    assert first.phase == "Progressing"
    d = decide(spec("ml", deadline=10), 1, first, missing, T0 + 11)
    assert d.status.phase == "Degraded"
    assert d.patch == ()
    assert "rel-api: Deployment not found" in d.status.message


def test_pods_must_report_the_variant_and_version_when_probed() -> None:
    good = [Report("ml", "v2"), Report("ml", "v2")]
    wrong_version = [Report("ml", "v2"), Report("ml", "v1")]
    wrong_variant = [Report("ml", "v2"), Report("baseline", "b1")]
    silent = [Report("ml", "v2"), Report(None, None, "connection refused")]
    consumer = rolled_out("rel-consumer", "ml", replicas=1, reports=[Report("ml", "v2")])
    for reports, done in ((good, True), (wrong_version, False), (wrong_variant, False)):
        views = [rolled_out("rel-api", "ml", reports=reports), consumer]
        d = decide(spec("ml", version="v2"), 1, Status(), views, T0)
        assert (d.status.phase == "Ready") is done, (reports, d.status.message)
    views = [rolled_out("rel-api", "ml", reports=silent), consumer]
    d = decide(spec("ml", version="v2"), 1, Status(), views, T0)
    assert d.status.phase == "Progressing"
    assert "did not answer: connection refused" in d.status.message


def test_terminating_and_unready_pods_are_not_counted_as_serving() -> None:
    done = rolled_out("rel-api", "ml")
    unready = replace(done, pods=(replace(done.pods[0], ready=False), done.pods[1]))
    d = decide(spec("ml"), 1, Status(), [unready, rolled_out("rel-consumer", "ml")], T0)
    assert d.status.phase == "Progressing"
    assert "1/2 pods ready" in d.status.message
    unobserved = replace(done, observed_generation=2)
    d = decide(spec("ml"), 1, Status(), [unobserved, rolled_out("rel-consumer", "ml")], T0)
    assert d.status.phase == "Progressing"


def test_a_switch_back_during_a_rollout_targets_the_new_spec_at_once() -> None:
    ready = step(decide(spec("baseline"), 1, Status(), both("baseline"), T0))
    to_ml = step(decide(spec("ml"), 2, ready, both("baseline"), T0 + 1))
    mid = [rolling("rel-api", "ml", "baseline"), rolling("rel-consumer", "ml", "baseline")]
    back = decide(spec("baseline"), 3, to_ml, mid, T0 + 2)
    assert back.patch == ("rel-api", "rel-consumer")
    assert back.variant == "baseline"
    assert back.status.target == "baseline"


def test_history_keeps_the_last_ten_switches() -> None:
    status = step(decide(spec("baseline"), 1, Status(), both("baseline"), T0))
    gen, now = 1, T0
    for i in range(12):
        variant = "ml" if i % 2 == 0 else "baseline"
        gen, now = gen + 1, now + 10
        status = step(decide(spec(variant), gen, status, both(variant), now))
    assert len(status.history) == 10
    assert status.history[-1].target == "baseline"


def test_a_model_version_cannot_be_confirmed_without_asking_the_pods() -> None:
    d = decide(spec("ml", version="v2"), 1, Status(), both("ml"), T0)
    assert d.status.phase == "Progressing"
    assert "modelVersion v2 needs --probe-pods" in d.status.message
