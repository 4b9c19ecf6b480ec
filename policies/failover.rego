# cutover's default failover policy.
#
# Input: the document described in docs/policy.md (incident, evidence per vantage, quorum,
# verification, signals, backends with health and residency, history, limits).
# Output: data.cutover.decision = {"action": "failover" | "await_approval" | "hold", "target", "reason"}.
package cutover

import rego.v1

default decision := {"action": "hold", "target": null, "reason": "no rule matched; holding"}

# The backend in trouble.
source := b if {
	some b in input.backends
	b.name == input.incident.backend
}

# Data stays where it may live: a target must share the source's residency label, if it has one.
residency_ok(b) if not source.residency
residency_ok(b) if b.residency == source.residency

# Healthy backends we may move to, in configuration order.
candidates := [b.name |
	some b in input.backends
	b.name != input.incident.backend
	b.health == "healthy"
	residency_ok(b)
]

# A signal speaks about the backend in trouble (or does not say which).
about_incident(signal) if not signal.backend
about_incident(signal) if signal.backend == input.incident.backend

# A Prometheus signal about this backend that is available, has a value, and says all is
# well disagrees with the probes. An unavailable signal or an empty query result is no
# evidence either way. (Status pages lag real outages; a calm status page is not counted
# as disagreement.)
signal_disagrees if {
	p := input.signals.prometheus
	p.status == "ok"
	p.value != null
	p.firing == false
	about_incident(p)
}

# Full evidence: down by quorum, verified by an independent re-check, not only latency,
# and no signal disagreeing.
confirmed if {
	input.evidence.quorum.met
	input.evidence.verify.failed
	not input.evidence.latency_only
	not signal_disagrees
}

# Some evidence, not enough to act alone.
partial if {
	input.evidence.quorum.down >= 1
	not confirmed
}

rate_limited if input.history.failovers_last_hour >= input.limits.max_failovers_per_hour

is_active if input.incident.backend == input.active

decision := {
	"action": "hold",
	"target": null,
	"reason": sprintf("%s is not the active backend (%s is); nothing to fail over", [input.incident.backend, input.active]),
} if {
	not is_active
} else := {
	"action": "hold",
	"target": null,
	"reason": sprintf("%s is down but no healthy backend with matching residency is available", [input.incident.backend]),
} if {
	count(candidates) == 0
} else := {
	"action": "failover",
	"target": candidates[0],
	"reason": sprintf("%s confirmed down by %d of %d vantages (quorum %d) and verified; %s is healthy", [
		input.incident.backend, input.evidence.quorum.down, input.evidence.quorum.reporting,
		input.evidence.quorum.required, candidates[0],
	]),
} if {
	confirmed
	not rate_limited
} else := {
	"action": "await_approval",
	"target": candidates[0],
	"reason": sprintf("%s confirmed down, but %d failovers in the last hour reach the limit of %d", [
		input.incident.backend, input.history.failovers_last_hour, input.limits.max_failovers_per_hour,
	]),
} if {
	confirmed
} else := {
	"action": "await_approval",
	"target": candidates[0],
	"reason": sprintf("partial evidence against %s: %d of %d reporting vantages see it down (quorum %d)%s%s", [
		input.incident.backend, input.evidence.quorum.down, input.evidence.quorum.reporting,
		input.evidence.quorum.required, latency_note, signal_note,
	]),
} if {
	partial
}

latency_note := "; latency only" if input.evidence.latency_only
else := ""

signal_note := "; the Prometheus signal disagrees" if signal_disagrees
else := ""

# Fallback: return to the original primary once it has been healthy for `[fallback] stable_for`,
# and not sooner than `[fallback] min_dwell` after the failover (flap damping).
# Input: the same document, plus input.fallback = {backend, health, healthy_for_ms, stable_for_ms,
# since_failover_ms, min_dwell_ms}. Output: {"allow": bool, "reason"}.
default fallback := {"allow": false, "reason": "no fallback rule matched"}

fallback := {
	"allow": false,
	"reason": sprintf("%s is %s", [input.fallback.backend, input.fallback.health]),
} if {
	input.fallback.health != "healthy"
} else := {
	"allow": false,
	"reason": sprintf("%s healthy for %dms of the %dms required", [
		input.fallback.backend, input.fallback.healthy_for_ms, input.fallback.stable_for_ms,
	]),
} if {
	input.fallback.healthy_for_ms < input.fallback.stable_for_ms
} else := {
	"allow": false,
	"reason": sprintf("only %dms since the failover; min_dwell is %dms", [
		input.fallback.since_failover_ms, input.fallback.min_dwell_ms,
	]),
} if {
	input.fallback.since_failover_ms < input.fallback.min_dwell_ms
} else := {
	"allow": true,
	"reason": sprintf("%s healthy for %dms (stable_for %dms), %dms since the failover", [
		input.fallback.backend, input.fallback.healthy_for_ms, input.fallback.stable_for_ms,
		input.fallback.since_failover_ms,
	]),
}

# Rollback (optional; this policy has no such rule): before a failed runbook run is rolled back
# onto a backend (the undo of a `state.switch`: after a failover, the primary that failed), the
# controller evaluates `rollback` with the same document plus input.rollback = {run, kind,
# failed_step, error, onto, onto_health}. Output: {"allow": bool, "reason"}. Without the rule, a
# rollback is allowed only onto a healthy or recovering backend; otherwise nothing is undone and
# the incident awaits approval (approve rolls back, reject stays failed over). See docs/policy.md.
# For example, to roll back at once onto a backend that is only suspect:
#
# rollback := {"allow": true, "reason": sprintf("%s is only suspect", [input.rollback.onto])} if {
# 	input.rollback.onto_health == "suspect"
# } else := {"allow": false, "reason": sprintf("%s is %s", [input.rollback.onto, input.rollback.onto_health])} if {
# 	not input.rollback.onto_health in {"healthy", "recovering"}
# } else := {"allow": true, "reason": sprintf("%s %s", [input.rollback.onto, input.rollback.onto_health])}
