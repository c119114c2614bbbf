// Package natstest owns the embedded NATS fixtures other packages' tests
// share: one standalone server or a routed JetStream cluster of three on
// 127.0.0.1 random ports, with t.TempDir stores, torn down by t.Cleanup;
// and a plain nats-server cluster as an operator would run one for gavel
// serve --nats (StartExternal).
package natstest
