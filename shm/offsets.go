package shm

// Byte offsets inside sections (relative to the section start).
const (
	// heartbeat: line 0 (written every cycle)
	hbCycle = 0
	hbMono  = 8
	hbState = 16 // u32
	hbFault = 20 // u32
	// heartbeat: lines 1-2, real-time mode under its own small seqlock
	hbRTSeq    = 64
	hbRTMode   = 72 // u32
	hbRTLen    = 76 // u32
	hbRTReason = 80 // reasonMax bytes
	// heartbeat: line 3, executive counters
	hbEventsDropped = 192
	hbCmdDiscarded  = 200
	hbCorrupt       = 208
	// heartbeat: line 4, bridge counters
	hbCmdBusy   = 256
	hbBridgePID = 264 // u32

	// task entry: line 0 static, line 1 hot
	tkName     = 0
	tkPeriod   = 48
	tkOverruns = 64
	tkLastWake = 72
	tkLastExec = 80

	// tag directory entry
	dName     = 0
	dUnit     = 64
	dType     = 80 // u8: index into tag.DataTypes + 1
	dAccess   = 81 // u8: 1 read, 2 write, 3 read_write
	dWritable = 82
	dRetain   = 83
	dLength   = 84 // u32
	dMin      = 88
	dMax      = 96
	dDeadband = 104
	dTextOff  = 112 // u32
	dTextCap  = 116 // u32
	dDevice   = 128 // nameMax bytes: the device's name, "" for internal tags

	// process image: line 0 the sequence, line 1 the cycle, then slots
	imSeq   = 0
	imCycle = 64
	// image slot
	isValue = 0
	isTime  = 8
	isStamp = 16 // image sequence at which the tag last changed
	isMeta  = 24 // quality | reason<<8 | text length<<16

	// command slot
	csID     = 0
	csValue  = 8
	csTag    = 16 // i32
	csKind   = 20 // u8
	csFlags  = 21 // u8: bit 0 text
	csLen    = 22 // u16
	csOrigin = 24 // wire.OriginMax bytes
	csText   = 72

	// result slot
	rsID     = 0
	rsCycle  = 8
	rsOld    = 16
	rsStatus = 24 // u8

	// event slot
	esCycle = 0
	esTime  = 8
	esValue = 16
	esTag   = 24 // i32
	esTask  = 28 // i16
	esKind  = 30 // u8
	esLen   = 31 // u8
	esState = 32 // u8
	esCode  = 34 // u16
	esText  = 36 // wire.EventTextMax bytes
)
