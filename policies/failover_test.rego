package cutover_test

import rego.v1

import data.cutover

base := {
	"version": 1,
	"active": "primary",
	"incident": {"id": "inc-1", "backend": "primary"},
	"backends": [
		{"name": "primary", "role": "primary", "health": "down", "residency": "eu"},
		{"name": "secondary", "role": "secondary", "health": "healthy", "residency": "eu"},
	],
	"evidence": {
		"quorum": {"required": 1, "down": 1, "reporting": 1, "met": true},
		"verify": {"failed": true, "outcome": "Timeout"},
		"latency_only": false,
	},
	"signals": {},
	"history": {"failovers_last_hour": 0},
	"limits": {"max_failovers_per_hour": 3},
}

test_confirmed_outage_fails_over if {
	d := cutover.decision with input as base
	d.action == "failover"
	d.target == "secondary"
}

test_one_of_three_vantages_asks_for_approval if {
	inp := json.patch(base, [{"op": "replace", "path": "/evidence/quorum", "value": {"required": 2, "down": 1, "reporting": 3, "met": false}}])
	d := cutover.decision with input as inp
	d.action == "await_approval"
}

test_unverified_outage_asks_for_approval if {
	inp := json.patch(base, [{"op": "replace", "path": "/evidence/verify", "value": {"failed": false, "outcome": "Ok"}}])
	d := cutover.decision with input as inp
	d.action == "await_approval"
}

test_latency_only_asks_for_approval if {
	inp := json.patch(base, [{"op": "replace", "path": "/evidence/latency_only", "value": true}])
	d := cutover.decision with input as inp
	d.action == "await_approval"
	contains(d.reason, "latency only")
}

prom(status, value, firing, backend) := {"prometheus": {
	"status": status, "value": value, "threshold": 0.05, "firing": firing, "backend": backend, "age_ms": 800,
}}

with_signals(signals) := json.patch(base, [{"op": "replace", "path": "/signals", "value": signals}])

test_disagreeing_prometheus_asks_for_approval if {
	d := cutover.decision with input as with_signals(prom("ok", 0.01, false, "primary"))
	d.action == "await_approval"
	d.target == "secondary"
	contains(d.reason, "the Prometheus signal disagrees")
}

test_disagreeing_prometheus_without_a_backend_asks_for_approval if {
	d := cutover.decision with input as with_signals({"prometheus": {"status": "ok", "value": 0, "firing": false}})
	d.action == "await_approval"
}

test_firing_prometheus_agrees if {
	d := cutover.decision with input as with_signals(prom("ok", 0.3, true, "primary"))
	d.action == "failover"
}

test_prometheus_about_another_backend_does_not_disagree if {
	d := cutover.decision with input as with_signals(prom("ok", 0.01, false, "secondary"))
	d.action == "failover"
}

test_prometheus_without_a_value_does_not_disagree if {
	d := cutover.decision with input as with_signals(prom("ok", null, false, "primary"))
	d.action == "failover"
}

test_unavailable_signal_does_not_block if {
	d := cutover.decision with input as with_signals({"prometheus": {
		"status": "unavailable", "error": "no answer within 2s", "value": null, "threshold": 0.05,
		"firing": null, "backend": "primary", "age_ms": 2100,
	}})
	d.action == "failover"
}

test_bare_unavailable_signal_does_not_block if {
	d := cutover.decision with input as with_signals({"prometheus": {"status": "unavailable"}})
	d.action == "failover"
}

test_calm_status_page_does_not_disagree if {
	page := {"statuspage": {"status": "ok", "indicator": "none", "description": "All Systems Operational", "backend": "primary", "age_ms": 100}}
	d := cutover.decision with input as with_signals(page)
	d.action == "failover"
}

test_unavailable_status_page_does_not_block if {
	page := {"statuspage": {"status": "unavailable", "error": "HTTP 503: busy", "indicator": null, "description": null, "backend": "primary", "age_ms": 100}}
	d := cutover.decision with input as with_signals(page)
	d.action == "failover"
}

test_latency_only_with_a_firing_signal_still_asks_for_approval if {
	inp := json.patch(with_signals(prom("ok", 0.3, true, "primary")), [{"op": "replace", "path": "/evidence/latency_only", "value": true}])
	d := cutover.decision with input as inp
	d.action == "await_approval"
	contains(d.reason, "latency only")
}

test_rate_limit_asks_for_approval if {
	inp := json.patch(base, [{"op": "replace", "path": "/history/failovers_last_hour", "value": 3}])
	d := cutover.decision with input as inp
	d.action == "await_approval"
	contains(d.reason, "limit")
}

test_residency_mismatch_holds if {
	inp := json.patch(base, [{"op": "replace", "path": "/backends/1/residency", "value": "us"}])
	d := cutover.decision with input as inp
	d.action == "hold"
}

test_unhealthy_target_holds if {
	inp := json.patch(base, [{"op": "replace", "path": "/backends/1/health", "value": "suspect"}])
	d := cutover.decision with input as inp
	d.action == "hold"
}

test_inactive_backend_holds if {
	inp := json.patch(base, [{"op": "replace", "path": "/active", "value": "secondary"}])
	d := cutover.decision with input as inp
	d.action == "hold"
}

test_no_evidence_holds if {
	inp := json.patch(base, [{"op": "replace", "path": "/evidence/quorum", "value": {"required": 1, "down": 0, "reporting": 1, "met": false}}])
	d := cutover.decision with input as inp
	d.action == "hold"
}

fallback_input := json.patch(base, [{"op": "add", "path": "/fallback", "value": {
	"backend": "primary", "health": "healthy", "healthy_for_ms": 600000, "stable_for_ms": 600000,
	"since_failover_ms": 900000, "min_dwell_ms": 300000,
}}])

test_fallback_when_stable_and_dwelled if {
	f := cutover.fallback with input as fallback_input
	f.allow == true
}

test_no_fallback_before_stable_for if {
	inp := json.patch(fallback_input, [{"op": "replace", "path": "/fallback/healthy_for_ms", "value": 1000}])
	f := cutover.fallback with input as inp
	f.allow == false
}

test_no_fallback_within_min_dwell if {
	inp := json.patch(fallback_input, [{"op": "replace", "path": "/fallback/since_failover_ms", "value": 1000}])
	f := cutover.fallback with input as inp
	f.allow == false
}

test_no_fallback_to_an_unhealthy_primary if {
	inp := json.patch(fallback_input, [{"op": "replace", "path": "/fallback/health", "value": "recovering"}])
	f := cutover.fallback with input as inp
	f.allow == false
}
