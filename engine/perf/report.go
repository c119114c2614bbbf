package perf

import (
	"fmt"
	"io"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// WriteText prints the commit report as `gavel bench commit` shows it.
func (rep *CommitReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "entry size                         %d bytes\n", rep.EntryBytes)
	fmt.Fprintf(w, "(a) raw JetStream publish, one     %9.0f msg/s\n", rep.RawOnePerSec)
	fmt.Fprintf(w, "(b) raw atomic batch of %-4d       %9.0f msg/s\n", rep.BatchSize, rep.RawBatchPerSec)
	fmt.Fprintf(w, "    raw atomic batch of 100        %9.0f msg/s\n", rep.RawBatch100)
	fmt.Fprintf(w, "(c) gavel registration, peak       %9.0f entries/s  p50 %s  p99 %s\n", rep.GavelPerSec, ms(rep.PeakLatency.P50), ms(rep.PeakLatency.P99))
	fmt.Fprintf(w, "    CPU at peak (whole process)    %9.1f µs/entry  %.2f cores  mean round %d, its append %s\n", float64(rep.PeakCPUPerEntry)/float64(time.Microsecond), rep.PeakCores, rep.BatchSize, ms(rep.PeakAppend))
	fmt.Fprintf(w, "    at half of peak (%.0f/s)     latency p50 %s  p99 %s\n", rep.HalfLoadPerSec, ms(rep.HalfLoadLatency.P50), ms(rep.HalfLoadLatency.P99))
	fmt.Fprintf(w, "    receipt after the answer       p50 %s  p99 %s\n", ms(rep.ReceiptLag.P50), ms(rep.ReceiptLag.P99))
	fmt.Fprintf(w, "(c)/(a) = %.1f× (target ≥ 10×)   (c)/(b) = %.0f%% (target ≥ 50%%)   errors %d\n", rep.VsRawOne, 100*rep.VsRawBatch, rep.Errors)
	if p := rep.Peer; p != nil {
		fmt.Fprintf(w, "(p) %s\n", p.Name)
		fmt.Fprintf(w, "    append, peak                   %9.0f entries/s  p50 %s  p99 %s\n", p.PerSec, ms(p.PeakLatency.P50), ms(p.PeakLatency.P99))
		fmt.Fprintf(w, "    at half of peak (%.0f/s)     latency p50 %s  p99 %s\n", p.HalfLoadPerSec, ms(p.HalfLoadLatency.P50), ms(p.HalfLoadLatency.P99))
		fmt.Fprintf(w, "    checkpoint after the answer    p50 %s  p99 %s\n", ms(p.ReceiptLag.P50), ms(p.ReceiptLag.P99))
		fmt.Fprintf(w, "gavel / peer = %.2f× (target ≥ 1.0×)   peer errors %d\n", p.GavelVsPeer, p.Errors)
	}
}
