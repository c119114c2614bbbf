// Package devca makes throwaway X.509 chains for development, demos and
// tests: a root CA, an optional intermediate and a leaf signing certificate,
// with the did:x509 issuer that names them. It is not a production CA.
package devca
