package shm

// ring is one side of a single-producer single-consumer ring in the region:
// line 0 holds the producer index, line 1 the consumer index, then cap
// fixed-size slots. Indices only grow (wrapping at 2^64); the slot of index
// i is i mod cap. Each side writes only its own index and caches the other's,
// so the common case touches no shared line but the slot.
//
// Hot path: every method is allocation-free and lock-free.
type ring struct {
	m     mem
	own   int // offset of the index this side writes
	peer  int // offset of the index the other side writes
	slots int // offset of slot 0
	slot  int // slot size
	cap   uint64
	mask  uint64
	local uint64 // this side's index (the only writer of it)
	other uint64 // the peer's index, last seen
	shown uint64 // consumer: the index last stored for the producer to see
	batch uint64 // consumer: store the index after this many releases
}

func newRing(m mem, s section, cap uint32, slot int, producer bool) ring {
	r := ring{m: m, slots: int(s.Off) + ringHead, slot: slot, cap: uint64(cap), mask: uint64(cap) - 1}
	head, tail := int(s.Off), int(s.Off)+lineSize
	if producer {
		r.own, r.peer = head, tail
	} else {
		r.own, r.peer = tail, head
	}
	r.local = m.load(r.own)
	r.other = m.load(r.peer)
	r.shown = r.local
	r.batch = max(1, r.cap/16)
	return r
}

func (r *ring) at(i uint64) int { return r.slots + int(i&r.mask)*r.slot }

// reserve returns the offset of the next free slot, or false when full (or
// when the consumer's index is impossible, which also reads as full).
func (r *ring) reserve() (int, bool) {
	if r.local-r.other >= r.cap {
		r.other = r.m.load(r.peer)
		if r.local-r.other >= r.cap {
			return 0, false
		}
	}
	return r.at(r.local), true
}

// room reports whether n more slots are free (producer).
func (r *ring) room(n uint64) bool {
	if r.local+n-r.other > r.cap {
		r.other = r.m.load(r.peer)
		if r.local+n-r.other > r.cap || r.local-r.other > r.cap {
			return false
		}
	}
	return true
}

// commitN publishes the n slots from local on (reserved with room) at once.
func (r *ring) commitN(n uint64) {
	r.local += n
	r.m.store(r.own, r.local)
}

// unread is how many slots the consumer may read, the oldest at
// peek's offset; it refreshes the producer's index. Call it after peek
// reported a slot (so the index is sane).
func (r *ring) unread() uint64 {
	r.other = r.m.load(r.peer)
	if n := r.other - r.local; n <= r.cap {
		return n
	}
	return 0
}

// free reports whether reserve would succeed.
func (r *ring) free() bool {
	_, ok := r.reserve()
	return ok
}

// commit publishes the reserved slot.
func (r *ring) commit() {
	r.local++
	r.m.store(r.own, r.local)
}

// peek returns the offset of the oldest unread slot. corrupt is true when
// the producer's index is impossible (more than cap ahead, or behind); the
// ring is then resynchronised to empty.
func (r *ring) peek() (off int, ok, corrupt bool) {
	if r.local == r.other {
		r.other = r.m.load(r.peer)
		if r.local == r.other {
			r.flush()
			return 0, false, false
		}
	}
	if r.other-r.local > r.cap {
		r.local = r.other
		r.flush()
		return 0, false, true
	}
	return r.at(r.local), true, false
}

// release frees the slot peek returned. The consumer's index is stored for
// the producer once per batch releases (and whenever the ring runs empty),
// so a fast stream does not bounce the index line on every slot.
func (r *ring) release() {
	r.local++
	if r.local-r.shown >= r.batch {
		r.flush()
	}
}

// flush stores the consumer's index for the producer.
func (r *ring) flush() {
	if r.shown != r.local {
		r.shown = r.local
		r.m.store(r.own, r.local)
	}
}

// skipAll discards everything unread.
func (r *ring) skipAll() uint64 {
	r.other = r.m.load(r.peer)
	n := r.other - r.local
	r.local = r.other
	r.flush()
	return n
}
