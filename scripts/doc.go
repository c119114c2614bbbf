// Package scripts owns gavel's JavaScript: the default constitution in
// constitution/ (ES modules validate.js, resolve.js, apply.js, actions.js
// and tables.js; see constitution/README.md), embedded for
// engine/constitution and for serving.
package scripts
