// Package metrics counts what the bridge does (messages published, records
// buffered and dropped, writes by result) and serves those counters with the
// executive's health — state, cycle, rt mode, every task's wake-up latency
// and execution-time percentiles and overruns — on a Prometheus /metrics
// endpoint. It needs a free TCP port for the endpoint, nothing else.
package metrics
