package winemu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
)

// Faults is the failure-injection control of a Server. Its zero value
// injects nothing. All methods are safe for concurrent use and take
// effect for the next PDU or call.
//
//   - Deny: OpenSCManager and CreateService return ERROR_ACCESS_DENIED (5)
//     for every user.
//   - Hang: binds, alter_contexts and endpoint-mapper calls are answered,
//     but every other request is never answered: the connection is held
//     open (and drained) until the client closes it or the server closes.
//     So a client dials through the endpoint mapper, authenticates, and
//     then its first SCM call runs into its own deadline.
//   - Refuse: new connections are reset right after accept, and existing
//     connections are reset when their next PDU arrives. The listeners
//     stay open so that the mode can be turned off again.
//   - ServiceDidNotStart: StartService starts the process, ignores any
//     report from it, kills it (and its process group) at once and returns
//     ERROR_SERVICE_REQUEST_TIMEOUT (1053), as if it had never reported
//     within Server.ServiceStartTimeout; the service stays STOPPED.
//   - Tamper: see TamperSpec.
//   - Delay: see DelaySpec.
type Faults struct {
	mu          sync.Mutex
	deny        bool
	hang        bool
	refuse      bool
	didNotStart bool
	tamper      TamperSpec
	tampered    []TamperEvent
	delay       DelaySpec
	release     chan struct{} // closed when the delay spec is replaced
}

// DelaySpec selects calls whose response is held back after the call was
// carried out: the server has done the work (created the service, say),
// and the client waits. A test cancels the call meanwhile, which is how
// an object comes to exist that the client never heard of. A held
// response is sent when Delay has passed, when the spec is replaced
// (SetDelay), or never when the server closes first.
type DelaySpec struct {
	// Count is how many more calls to delay; 0 disables.
	Count int
	// Interface ("svcctl", "winreg", ...) and OpNum select the calls;
	// empty and -1 match every one.
	Interface string
	OpNum     int
	// Delay is how long each response is held.
	Delay time.Duration
}

// SetDelay replaces the delay selection and releases the responses held
// under the previous one.
func (f *Faults) SetDelay(spec DelaySpec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.release != nil {
		close(f.release)
	}
	f.delay, f.release = spec, make(chan struct{})
}

// takeDelay decides whether to hold the response to a call and, if so,
// consumes one count and returns the delay and the release channel.
func (f *Faults) takeDelay(iface string, opnum int) (time.Duration, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.delay
	if d.Count <= 0 || (d.OpNum >= 0 && d.OpNum != opnum) || (d.Interface != "" && d.Interface != iface) {
		return 0, nil, false
	}
	f.delay.Count--
	return d.Delay, f.release, true
}

// TamperSpec selects response fragments in which one bit of the stub data
// is flipped after the fragment was signed (and, at privacy, sealed). It
// applies only to responses protected at packet integrity or privacy.
type TamperSpec struct {
	// Count is how many more fragments to tamper with; 0 disables.
	Count int
	// OpNum restricts tampering to responses to this operation number;
	// -1 matches every operation.
	OpNum int
	// Interface restricts tampering to this interface name ("svcctl",
	// "epm", ...); empty matches every interface.
	Interface string
	// SealedOnly skips responses protected at integrity only.
	SealedOnly bool
	// StubOffset is the byte of the fragment's stub data to change
	// (clamped to the stub); Bit is the bit (0-7) to flip.
	StubOffset int
	Bit        uint8
}

// TamperEvent records one tampered fragment.
type TamperEvent struct {
	Interface string
	OpNum     int
	CallID    uint32
	AuthLevel dcerpc.AuthLevel
	// PDUOffset is the offset of the changed byte in the fragment,
	// StubOffset its offset in the fragment's stub data.
	PDUOffset, StubOffset int
	// Before and After are the byte on the wire before and after the flip.
	Before, After byte
}

// SetDeny turns the Deny mode on or off.
func (f *Faults) SetDeny(on bool) { f.mu.Lock(); f.deny = on; f.mu.Unlock() }

// SetHang turns the Hang mode on or off. Requests already hung stay hung.
func (f *Faults) SetHang(on bool) { f.mu.Lock(); f.hang = on; f.mu.Unlock() }

// SetRefuse turns the Refuse mode on or off.
func (f *Faults) SetRefuse(on bool) { f.mu.Lock(); f.refuse = on; f.mu.Unlock() }

// SetServiceDidNotStart turns the ServiceDidNotStart mode on or off.
func (f *Faults) SetServiceDidNotStart(on bool) { f.mu.Lock(); f.didNotStart = on; f.mu.Unlock() }

// SetTamper replaces the tamper selection.
func (f *Faults) SetTamper(spec TamperSpec) { f.mu.Lock(); f.tamper = spec; f.mu.Unlock() }

// Tampered returns the fragments tampered with so far.
func (f *Faults) Tampered() []TamperEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TamperEvent(nil), f.tampered...)
}

// Deny reports whether the Deny mode is on.
func (f *Faults) Deny() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.deny }

// Hang reports whether the Hang mode is on.
func (f *Faults) Hang() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.hang }

// Refuse reports whether the Refuse mode is on.
func (f *Faults) Refuse() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.refuse }

// ServiceDidNotStart reports whether the ServiceDidNotStart mode is on.
func (f *Faults) ServiceDidNotStart() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.didNotStart }

// takeTamper decides whether to tamper with a response fragment and, if
// so, consumes one count and returns the spec.
func (f *Faults) takeTamper(iface string, opnum int, level dcerpc.AuthLevel) (TamperSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tamper
	if t.Count <= 0 || level < dcerpc.AuthLevelPktIntegrity {
		return t, false
	}
	if t.SealedOnly && level != dcerpc.AuthLevelPktPrivacy {
		return t, false
	}
	if t.OpNum >= 0 && t.OpNum != opnum {
		return t, false
	}
	if t.Interface != "" && t.Interface != iface {
		return t, false
	}
	f.tamper.Count--
	return t, true
}

func (f *Faults) recordTamper(ev TamperEvent) {
	f.mu.Lock()
	f.tampered = append(f.tampered, ev)
	f.mu.Unlock()
}

// ErrBadFault is returned by Faults.Set for a specification it cannot
// parse.
var ErrBadFault = errors.New("winemu: bad fault specification")

// Set applies a textual fault specification, as used by cmd/winemu's
// -fault flag and control socket. spec is a comma-separated list of:
//
//	none                      clear every mode, any pending tamper and delay
//	deny | hang | refuse | did-not-start   turn a mode on (NAME=off turns it off)
//	tamper=OPNUM:OFFSET:BIT:COUNT[:sealed]  tamper with COUNT responses to
//	                          OPNUM (-1 for any), flipping BIT of stub byte
//	                          OFFSET; "sealed" skips integrity-only responses
//
// On error nothing is changed.
func (f *Faults) Set(spec string) error {
	type change func()
	var changes []change
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, hasVal := strings.Cut(item, "=")
		on := true
		if name != "tamper" && hasVal {
			switch val {
			case "on":
			case "off":
				on = false
			default:
				return fmt.Errorf("%w: %q", ErrBadFault, item)
			}
		}
		switch name {
		case "none":
			changes = append(changes, func() {
				f.deny, f.hang, f.refuse, f.didNotStart = false, false, false, false
				f.tamper = TamperSpec{}
				if f.release != nil {
					close(f.release)
					f.release = nil
				}
				f.delay = DelaySpec{}
			})
		case "deny":
			changes = append(changes, func() { f.deny = on })
		case "hang":
			changes = append(changes, func() { f.hang = on })
		case "refuse":
			changes = append(changes, func() { f.refuse = on })
		case "did-not-start":
			changes = append(changes, func() { f.didNotStart = on })
		case "tamper":
			parts := strings.Split(val, ":")
			if len(parts) < 4 || len(parts) > 5 || (len(parts) == 5 && parts[4] != "sealed") {
				return fmt.Errorf("%w: %q", ErrBadFault, item)
			}
			var n [4]int
			for i := range n {
				v, err := strconv.Atoi(parts[i])
				if err != nil {
					return fmt.Errorf("%w: %q", ErrBadFault, item)
				}
				n[i] = v
			}
			if n[0] < -1 || n[1] < 0 || n[2] < 0 || n[2] > 7 || n[3] < 0 {
				return fmt.Errorf("%w: %q", ErrBadFault, item)
			}
			t := TamperSpec{OpNum: n[0], StubOffset: n[1], Bit: uint8(n[2]), Count: n[3], SealedOnly: len(parts) == 5}
			changes = append(changes, func() { f.tamper = t })
		default:
			return fmt.Errorf("%w: unknown mode %q", ErrBadFault, name)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		c()
	}
	return nil
}

// String describes the current modes in the syntax Set accepts.
func (f *Faults) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range []struct {
		name string
		on   bool
	}{{"deny", f.deny}, {"hang", f.hang}, {"refuse", f.refuse}, {"did-not-start", f.didNotStart}} {
		if m.on {
			out = append(out, m.name)
		}
	}
	if t := f.tamper; t.Count > 0 {
		s := fmt.Sprintf("tamper=%d:%d:%d:%d", t.OpNum, t.StubOffset, t.Bit, t.Count)
		if t.SealedOnly {
			s += ":sealed"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
