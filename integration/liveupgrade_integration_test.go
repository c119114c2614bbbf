//go:build integration

package integration

// assertGapTarget: the integration tier holds the planned primary change
// to issue 11's 300 ms.
const assertGapTarget = true
