package shm

import "github.com/mkrt/mkrt/shm/wire"

// SubmitCut publishes c as the first command of a unit whose others never
// come: what a broken or hostile producer could leave in the ring.
func SubmitCut(r *Reader, c wire.Command) {
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	r.put(r.m[r.cmd.at(r.cmd.local):][:r.cmdSlot], r.cmd.local+1, &c, true)
	r.cmd.commitN(1)
}
