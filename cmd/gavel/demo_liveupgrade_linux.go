package main

import "syscall"

// childProcAttr makes a demo's child replica get SIGTERM when the demo
// dies, so a killed demo leaves no servers behind.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
