// Package ui holds the dashboard's assets (plain HTML, CSS and JavaScript,
// no build step), embedded in the binary and served at /ui/ by handlers.
// The script renders data with textContent and createElement only, never
// innerHTML, so text from members and nodes is never markup.
package ui

import "embed"

// FS holds index.html, app.js and app.css.
//
//go:embed index.html app.js app.css
var FS embed.FS
