// Package integration holds gavel's end-to-end tests: real gavel processes
// over real embedded NATS servers and pebble stores, killed and restarted,
// audited from their logs. The default tier runs with go test ./...; the
// soak tier (build tag "integration") runs longer and harder.
package integration
