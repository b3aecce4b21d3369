package wmi

// session.go drives go-msrpc's DCOM/WMI client through one WMI session:
// TCP 135 (ServerAlive2, RemoteActivation), the dynamic port named by
// the OXID bindings (NTLMLogin, IWbemServices, IEnumWbemClassObject,
// IRemUnknown2), each step under its own deadline.
//
// go-msrpc ties a transport's receive loop to the context of its first
// bind, and its own dial ignores cancellation. So every bind runs under
// the session's long-lived context, and a watchdog closes the session's
// TCP connections when the step's deadline passes; calls run under the
// step's context directly.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iactivation/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iobjectexporter/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown2/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/oaut"
	msrpcwmi "github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/ienumwbemclassobject/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemclassobject/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemservices/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"
	"github.com/oiweiwei/go-msrpc/ndr"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// dialer is the go-msrpc dialer of one session: it dials under the
// current step's context and keeps every connection so that the session
// can close them (go-msrpc leaves a connection whose first bind failed
// open).
type dialer struct {
	mu    sync.Mutex
	step  context.Context
	conns []net.Conn
	nd    net.Dialer
}

func (d *dialer) setStep(ctx context.Context) {
	d.mu.Lock()
	d.step = ctx
	d.mu.Unlock()
}

func (d *dialer) clearStep() {
	d.mu.Lock()
	d.step = nil
	d.mu.Unlock()
}

// DialContext dials addr under the current step's context.
func (d *dialer) DialContext(_ context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	ctx := d.step
	d.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := d.nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err}
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

// closeAll closes every connection the dialer made.
func (d *dialer) closeAll() {
	d.mu.Lock()
	cs := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// dialError marks a failure of the TCP connect itself.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// session is one WMI connection to a target.
type session struct {
	l    *Launcher
	t    target
	log  *slog.Logger
	d    *dialer
	life context.Context // lifetime of the transports
	stop context.CancelFunc

	ep, dyn dcerpc.Conn
	// epSec and dynSec carry the security context established by the
	// first bind on each connection; later binds on that connection
	// reuse it (one NTLM context per connection, as Windows does).
	epSec, dynSec context.Context
	port          int
	ver           *dcom.COMVersion
	remUnk        *dcom.IPID
	svcs          iwbemservices.ServicesClient
	refs          []*dcom.RemoteInterfaceReference // objects to release with the references we hold
	dynUp         bool                             // a bind on the dynamic port succeeded
	broken        bool                             // a step timed out or lost its connection
	closed        bool
}

// step runs f under the step's deadline; binds inside it are guarded by
// the watchdog. It turns a passed deadline into ErrNoAnswer and adds
// the endpoint to the error.
func (s *session) step(ctx context.Context, name string, port int, dynamic bool, f func(ctx context.Context) error) error {
	sctx, cancel := context.WithTimeout(ctx, s.l.timeouts().of(name))
	defer cancel()
	s.d.setStep(sctx)
	stop := context.AfterFunc(sctx, s.d.closeAll)
	began := time.Now()
	err := safely(sctx, f)
	watchdogFired := !stop()
	s.d.clearStep()
	s.log.Debug("wmi step", "host", s.t.Addr, "step", name, "port", port, "dur", time.Since(began).Round(time.Microsecond).String(), "ok", err == nil && !watchdogFired)
	if err == nil && !watchdogFired {
		return nil
	}
	if err == nil {
		err = errors.New("connection closed at the deadline")
	}
	// go-msrpc closes a transport after a failed call, and the next bind
	// dials a new one: that one needs a security context of its own.
	if dynamic {
		s.dynSec = nil
	} else {
		s.epSec = nil
	}
	if watchdogFired || isTimeout(err) || isRefused(err) || ctx.Err() != nil {
		// Releasing would wait on the same silent endpoint.
		s.broken = true
	}
	if ctx.Err() != nil {
		// The caller cancelled (or its own deadline passed).
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	} else if errors.Is(sctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		err = fmt.Errorf("%w (%s): %w: %w", ErrNoAnswer, s.l.timeouts().of(name), context.DeadlineExceeded, err)
	}
	var de *dialError
	return &EndpointError{Step: name, Addr: s.t.Addr, Port: port, Dynamic: dynamic, Dial: errors.As(err, &de), Err: err}
}

// ErrMalformed is matched when a response could not be decoded: the
// decoder failed or panicked on what the target sent.
var ErrMalformed = errors.New("wmi: malformed response")

// safely runs f, turning a panic in the decoders it drives into an
// error: a hostile or broken target must not crash the console.
func safely(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decoder panic: %v", ErrMalformed, r)
		}
	}()
	return f(ctx)
}

// bindingHost writes an address for a string binding.
func bindingHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

// security returns the options of one new security context: NTLM with
// the grant's credentials, or for a Kerberos grant Kerberos to
// RPCSS/FQDN (the SPN Windows uses for DCOM; it maps to the computer's
// account, whose key every DCOM bind to the computer decrypts with).
func (s *session) security(ctx context.Context) ([]dcerpc.Option, error) {
	if s.t.Kerberos != nil {
		return s.t.Kerberos(ctx, "RPCSS", s.l.Level == adauth.RPCPrivacy)
	}
	return rpcauth.OptionsFor(s.t.Credentials, s.l.Level, s.t.ExpectName)
}

// valuesOf is a context with the lifetime of Context and the values of
// v first: go-msrpc finds an established security context among a
// context's values.
type valuesOf struct {
	context.Context
	v context.Context
}

func (c valuesOf) Value(k any) any {
	if x := c.v.Value(k); x != nil {
		return x
	}
	return c.Context.Value(k)
}

// bindOn returns the context and options for binding one more client on
// a connection: the connection's established security context when
// there is one, else a new one from rpcauth.
func (s *session) bindOn(sec context.Context) (context.Context, []dcerpc.Option, error) {
	if sec != nil {
		return valuesOf{Context: s.life, v: sec}, nil, nil
	}
	opts, err := s.security(s.life)
	return s.life, opts, err
}

func (s *session) dial(port int) (dcerpc.Conn, error) {
	return dcerpc.Dial(s.life, "ncacn_ip_tcp:"+bindingHost(s.t.Addr)+"["+strconv.Itoa(port)+"]",
		dcerpc.WithDialer(s.d))
}

// open runs connect, server alive, activate, connect dynamic and login.
// On error the session is closed.
func (l *Launcher) open(ctx context.Context, t target) (*session, error) {
	if t.Credentials == nil {
		return nil, l.failure(StepConnect, rpcauth.ErrNoCredentials)
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &session{l: l, t: t, log: l.log(), d: &dialer{}, life: life, stop: stop}
	if err := s.connect(ctx); err != nil {
		s.close(ctx)
		return nil, err
	}
	return s, nil
}

// oxidPort matches a string binding "address[port]".
var oxidPort = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

func (s *session) connect(ctx context.Context) error {
	l := s.l
	epPort := l.epmPort()
	opts, err := s.security(ctx)
	if err != nil {
		return l.failure(StepConnect, err)
	}
	var exporter iobjectexporter.ObjectExporterClient
	err = s.step(ctx, StepConnect, epPort, false, func(ctx context.Context) error {
		cc, err := s.dial(epPort)
		if err != nil {
			return err
		}
		s.ep = cc
		exporter, err = iobjectexporter.NewObjectExporterClient(s.life, cc, opts...)
		if err == nil {
			s.epSec = exporter.Conn().Context()
		}
		return err
	})
	if err != nil {
		return l.failure(StepConnect, err)
	}
	err = s.step(ctx, StepServerAlive, epPort, false, func(ctx context.Context) error {
		alive, err := exporter.ServerAlive2(ctx, &iobjectexporter.ServerAlive2Request{})
		if err != nil {
			return err
		}
		s.ver = alive.COMVersion
		if s.ver == nil {
			s.ver = &dcom.COMVersion{MajorVersion: 5, MinorVersion: 7}
		}
		return nil
	})
	if err != nil {
		return l.failure(StepServerAlive, err)
	}
	var loginIPID *dcom.IPID
	err = s.step(ctx, StepActivate, epPort, false, func(ctx context.Context) error {
		bctx, opts, err := s.bindOn(s.epSec)
		if err != nil {
			return err
		}
		act, err := iactivation.NewActivationClient(bctx, s.ep, opts...)
		if err != nil {
			return err
		}
		resp, err := act.RemoteActivation(ctx, &iactivation.RemoteActivationRequest{
			ORPCThis:                   &dcom.ORPCThis{Version: s.ver},
			ClassID:                    msrpcwmi.Level1LoginClassID.GUID(),
			IIDs:                       []*dcom.IID{iwbemlevel1login.Level1LoginIID},
			RequestedProtocolSequences: []uint16{7},
		})
		if err != nil {
			return err
		}
		if resp.HResult != 0 {
			return HResult(uint32(resp.HResult))
		}
		if len(resp.Results) == 0 || len(resp.InterfaceData) == 0 {
			return ENoInterface
		}
		if resp.Results[0] != 0 {
			return HResult(uint32(resp.Results[0]))
		}
		loginIPID = s.hold(resp.InterfaceData[0])
		s.remUnk = resp.RemoteUnknown
		port, err := tcpPort(resp.OXIDBindings)
		if err != nil {
			return err
		}
		s.port = port
		return nil
	})
	if err != nil {
		return l.failure(StepActivate, err)
	}
	s.log.Debug("wmi activated", "host", s.t.Addr, "dynamic_port", s.port)

	var login iwbemlevel1login.Level1LoginClient
	err = s.step(ctx, StepConnectDynamic, s.port, true, func(ctx context.Context) error {
		opts, err := s.security(ctx)
		if err != nil {
			return err
		}
		cc, err := s.dial(s.port)
		if err != nil {
			return err
		}
		s.dyn = cc
		login, err = iwbemlevel1login.NewLevel1LoginClient(s.life, cc, append(opts, dcom.WithIPID(loginIPID))...)
		s.dynUp = err == nil
		if err == nil {
			s.dynSec = login.Conn().Context()
		}
		return err
	})
	if err != nil {
		return l.failure(StepConnectDynamic, err)
	}
	err = s.step(ctx, StepLogin, s.port, true, func(ctx context.Context) error {
		resp, err := login.NTLMLogin(ctx, &iwbemlevel1login.NTLMLoginRequest{
			This:            &dcom.ORPCThis{Version: s.ver},
			NetworkResource: l.namespace(),
		})
		if resp != nil && resp.Return != 0 {
			return HResult(uint32(resp.Return))
		}
		if err != nil {
			return err
		}
		if resp.Namespace == nil {
			return WBEMEAccessDenied
		}
		ipid := s.hold(resp.Namespace.InterfacePointer())
		bctx, opts, err := s.bindOn(s.dynSec)
		if err != nil {
			return err
		}
		s.svcs, err = iwbemservices.NewServicesClient(bctx, s.dyn, append(opts, dcom.WithIPID(ipid))...)
		return err
	})
	if err != nil {
		return l.failure(StepLogin, err)
	}
	return nil
}

// hold records the references an interface pointer gives us, for
// release, and returns its IPID.
func (s *session) hold(ip *dcom.InterfacePointer) *dcom.IPID {
	std := ip.GetStandardObjectReference().Std
	if std == nil || std.IPID == nil {
		return &dcom.IPID{Data4: make([]byte, 8)}
	}
	if std.PublicReferencesCount > 0 {
		s.refs = append(s.refs, &dcom.RemoteInterfaceReference{IPID: std.IPID, PublicReferencesCount: std.PublicReferencesCount})
	}
	return std.IPID
}

// tcpPort picks the TCP port from the OXID bindings. The host is always
// the target's own address: a binding naming another host is not
// followed.
func tcpPort(b *dcom.DualStringArray) (int, error) {
	for _, sb := range b.GetStringBindings() {
		if sb.TowerID != 7 {
			continue
		}
		if m := oxidPort.FindStringSubmatch(sb.NetworkAddr); m != nil {
			if p, err := strconv.Atoi(m[2]); err == nil && p > 0 && p < 65536 {
				return p, nil
			}
		}
	}
	return 0, fmt.Errorf("wmi: the OXID bindings name no TCP port")
}

// getObject returns a class definition through IWbemServices.GetObject.
func (s *session) getObject(ctx context.Context, class string) (*wmio.Object, error) {
	var obj *wmio.Object
	err := s.step(ctx, StepGetClass, s.port, true, func(ctx context.Context) error {
		resp, err := s.svcs.GetObject(ctx, &iwbemservices.GetObjectRequest{
			This:       &dcom.ORPCThis{Version: s.ver},
			ObjectPath: &oaut.String{Data: class},
			Object:     &msrpcwmi.ClassObject{},
		})
		if resp != nil && resp.Return != 0 {
			return HResult(uint32(resp.Return))
		}
		if err != nil {
			return err
		}
		obj, err = decodeObject(resp.Object)
		return err
	})
	if err != nil {
		return nil, s.l.failure(StepGetClass, err)
	}
	return obj, nil
}

// execMethod calls a method with in-parameters built from the class's
// method signature and returns the out-parameters.
func (s *session) execMethod(ctx context.Context, step string, class *wmio.Object, path, method string, values wmio.Values) (wmio.Values, error) {
	inSig, _, err := class.Method(method)
	if err != nil {
		return nil, s.l.failure(step, fmt.Errorf("wmi: %s has no method %s: %w", path, method, WBEMEInvalidMethod))
	}
	params, err := inSig.New(values)
	if err != nil {
		return nil, s.l.failure(step, fmt.Errorf("wmi: in-parameters of %s: %w", method, err))
	}
	in, err := encodeObject(params)
	if err != nil {
		return nil, s.l.failure(step, err)
	}
	var out wmio.Values
	err = s.step(ctx, step, s.port, true, func(ctx context.Context) error {
		resp, err := s.svcs.ExecMethod(ctx, &iwbemservices.ExecMethodRequest{
			This:       &dcom.ORPCThis{Version: s.ver},
			ObjectPath: &oaut.String{Data: path},
			MethodName: &oaut.String{Data: method},
			InParams:   in,
			OutParams:  &msrpcwmi.ClassObject{},
		})
		if resp != nil && resp.Return != 0 {
			return HResult(uint32(resp.Return))
		}
		if err != nil {
			return err
		}
		obj, err := decodeObject(resp.OutParams)
		if err != nil {
			return err
		}
		if obj.Instance == nil {
			return fmt.Errorf("wmi: %s returned no out-parameters", method)
		}
		out = obj.Values()
		return nil
	})
	if err != nil {
		return nil, s.l.failure(step, err)
	}
	return out, nil
}

// query runs a WQL query and returns the instances' values.
func (s *session) query(ctx context.Context, step, wql string) ([]wmio.Values, error) {
	var rows []wmio.Values
	err := s.step(ctx, step, s.port, true, func(ctx context.Context) error {
		resp, err := s.svcs.ExecQuery(ctx, &iwbemservices.ExecQueryRequest{
			This:          &dcom.ORPCThis{Version: s.ver},
			QueryLanguage: &oaut.String{Data: "WQL"},
			Query:         &oaut.String{Data: wql},
			Flags:         int32(msrpcwmi.QueryFlagType(0x20 | 0x10)), // forward only, return immediately
		})
		if resp != nil && resp.Return != 0 {
			return HResult(uint32(resp.Return))
		}
		if err != nil {
			return err
		}
		ipid := s.hold(resp.Enum.InterfacePointer())
		bctx, opts, err := s.bindOn(s.dynSec)
		if err != nil {
			return err
		}
		enum, err := ienumwbemclassobject.NewEnumClassObjectClient(bctx, s.dyn, append(opts, dcom.WithIPID(ipid))...)
		if err != nil {
			return err
		}
		for {
			next, err := enum.Next(ctx, &ienumwbemclassobject.NextRequest{
				This:    &dcom.ORPCThis{Version: s.ver},
				Timeout: -1, // WBEM_INFINITE: the step's deadline bounds it
				Count:   32,
			})
			if next == nil && err != nil {
				return err
			}
			if next.Return != 0 && next.Return != int32(WBEMSFalse) {
				return HResult(uint32(next.Return))
			}
			for i := 0; i < int(next.Returned) && i < len(next.Objects); i++ {
				obj, err := decodeObject(next.Objects[i])
				if err != nil {
					return err
				}
				if obj.Instance != nil {
					rows = append(rows, obj.Values())
				}
			}
			if next.Return == int32(WBEMSFalse) || next.Returned == 0 {
				return nil
			}
		}
	})
	if err != nil {
		return nil, s.l.failure(step, err)
	}
	return rows, nil
}

// close releases the remote objects (best effort, under the release
// step's deadline) and closes every connection.
func (s *session) close(ctx context.Context) {
	if s.closed {
		return
	}
	s.closed = true
	// Objects we cannot release (the dynamic port never answered) are
	// collected by the target's OXID resolver when our pings stop.
	if len(s.refs) > 0 && s.dynUp && !s.broken && s.remUnk != nil && ctx.Err() == nil {
		if err := s.release(ctx); err != nil {
			s.log.Info("wmi release failed", "host", s.t.Addr, "err", err)
		}
	}
	// Close the sockets first: go-msrpc's Close waits for its receive
	// loop, which a socket that is still open could keep waiting.
	s.d.closeAll()
	cctx := context.WithoutCancel(ctx)
	if s.dyn != nil {
		_ = s.dyn.Close(cctx)
	}
	if s.ep != nil {
		_ = s.ep.Close(cctx)
	}
	s.stop()
}

// release drops our references to every object this session was given.
func (s *session) release(ctx context.Context) error {
	return s.step(ctx, StepRelease, s.port, true, func(ctx context.Context) error {
		bctx, opts, err := s.bindOn(s.dynSec)
		if err != nil {
			return err
		}
		rem, err := iremunknown2.NewRemoteUnknown2Client(bctx, s.dyn, append(opts, dcom.WithIPID(s.remUnk))...)
		if err != nil {
			return err
		}
		req := &iremunknown.RemoteReleaseRequest{This: &dcom.ORPCThis{Version: s.ver}}
		req.InterfaceReferences = s.refs
		_, err = rem.RemoteUnknown().RemoteRelease(ctx, req)
		if err == nil {
			s.refs = nil
		}
		return err
	})
}

// decodeObject decodes an IWbemClassObject passed by value.
func decodeObject(co *msrpcwmi.ClassObject) (*wmio.Object, error) {
	if co == nil || len(co.Data) == 0 {
		return nil, errors.New("wmi: empty object reference")
	}
	ref := &dcom.ObjectReference{}
	if err := ndr.Unmarshal(co.Data, ref, ndr.Opaque); err != nil {
		return nil, fmt.Errorf("%w: object reference: %w", ErrMalformed, err)
	}
	c, ok := ref.ObjectReference.GetValue().(*dcom.ObjectReferenceCustom)
	if !ok || len(c.ObjectData) < 4 {
		return nil, errors.New("wmi: object is not passed by value")
	}
	obj, err := wmio.Unmarshal(c.ObjectData)
	if err != nil {
		return nil, fmt.Errorf("%w: CIM object: %w", ErrMalformed, err)
	}
	return obj, nil
}

// encodeObject encodes a CIM object as an IWbemClassObject passed by
// value (OBJREF_CUSTOM with the WMI unmarshaler class).
func encodeObject(obj *wmio.Object) (*msrpcwmi.ClassObject, error) {
	b, err := wmio.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("wmi: encode CIM object: %w", err)
	}
	ref := &dcom.ObjectReference{
		Signature: []byte(dcom.ObjectReferenceCustomSignature),
		Flags:     dcom.ObjectReferenceTypeCustom,
		IID:       iwbemclassobject.ClassObjectIID,
		ObjectReference: &dcom.ObjectReference_ObjectReference{
			Value: &dcom.ObjectReference_Custom{Custom: &dcom.ObjectReferenceCustom{
				ClassID:    msrpcwmi.ClassObjectUnmarshalClassID,
				Size:       uint32(len(b)),
				ObjectData: b,
			}},
		},
	}
	data, err := ndr.Marshal(ref, ndr.Opaque)
	if err != nil {
		return nil, fmt.Errorf("wmi: encode object reference: %w", err)
	}
	return &msrpcwmi.ClassObject{DataCount: uint32(len(data)), Data: data}, nil
}
