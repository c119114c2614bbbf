// Package handlers owns gavel's wire surface: the HTTP routes and the NATS
// request subjects, and the HTTP edge below them (Listener: connection caps,
// JSON for net/http's own answers). Handlers decode, call the service, and
// encode; typed errors become status codes in exactly one place (Status).
package handlers
