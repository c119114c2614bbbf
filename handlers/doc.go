// Package handlers owns gavel's wire surface: the HTTP routes and the NATS
// request subjects. Handlers decode, call the service, and encode; typed
// errors become status codes in exactly one place (Status).
package handlers
