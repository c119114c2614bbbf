package sequencer

// Stopped reports whether Run has returned: the sequencer writes no more
// (it shut down, or stopped because a newer view wrote or its state is
// unknown). Before Run starts it is false.
func (s *Sequencer) Stopped() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}
