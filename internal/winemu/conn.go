package winemu

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/ndr"
)

// FaultError is an error that a handler may return to fault the call
// with a specific DCE/RPC status (for example 0x80010113,
// RPC_E_INVALID_IPID, for an unknown DCOM object).
type FaultError uint32

func (e FaultError) Error() string { return fmt.Sprintf("winemu: rpc fault 0x%08x", uint32(e)) }

const writeTimeout = 30 * time.Second

// conn is one TCP connection: one association, served in order.
type conn struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	served map[string]bool

	bindDone bool
	xmit     int // largest fragment we send (the client's max_recv_frag)
	assoc    uint32
	contexts map[uint16]*Interface
	bound    map[*Interface]bool
	auths    map[uint32]*authContext
	defAuth  *authContext

	pending *pendingCall
}

// pendingCall is a request being reassembled from fragments.
type pendingCall struct {
	callID uint32
	ctxID  uint16
	opnum  uint16
	object *uuid.UUID
	auth   *authContext
	stub   []byte
}

func (c *conn) log() *slog.Logger {
	return c.srv.Logger.With("conn", c.id, "remote", c.nc.RemoteAddr().String())
}

func (c *conn) serve() {
	stop := context.AfterFunc(c.ctx, func() { c.nc.Close() })
	defer func() {
		stop()
		c.cancel()
		c.nc.Close()
		c.srv.dropConn(c)
		for i := range c.bound {
			if i.Rundown != nil {
				i.Rundown(c.id)
			}
		}
	}()
	br := bufio.NewReaderSize(c.nc, maxFrag)
	for {
		h, b, err := readPDU(br, 0xffff)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.log().Debug("connection ended", "err", err)
			}
			return
		}
		if c.srv.Faults.Refuse() {
			c.log().Info("connection reset by fault mode")
			resetConn(c.nc)
			return
		}
		var werr error
		switch h.Type {
		case dcerpc.PacketTypeBind:
			werr = c.handleBind(h, b, false)
		case dcerpc.PacketTypeAlterContext:
			werr = c.handleBind(h, b, true)
		case dcerpc.PacketTypeAuth3:
			c.handleAuth3(h, b)
		case dcerpc.PacketTypeRequest:
			var hang bool
			hang, werr = c.handleRequest(h, b)
			if hang {
				c.hang()
				return
			}
		case dcerpc.PacketTypeOrphaned, dcerpc.PacketTypeCancel:
			if c.pending != nil && c.pending.callID == h.CallID {
				c.pending = nil
			}
		default:
			c.log().Info("unexpected PDU, closing", "type", h.Type.String())
			return
		}
		if werr != nil {
			c.log().Debug("connection ended", "err", werr)
			return
		}
	}
}

// hang holds a connection open without answering, draining what the client
// sends, until the client or the server closes it.
func (c *conn) hang() {
	c.log().Info("request hung by fault mode")
	_, _ = io.Copy(io.Discard, c.nc)
}

func (c *conn) write(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(b)
	return err
}

func (c *conn) handleBind(h header, b []byte, alter bool) error {
	pdu, err := decodeBind(b, h)
	if err != nil {
		return err
	}
	nak := func(reason dcerpc.ProviderReason) error {
		out, err := controlPDU(dcerpc.PacketTypeBindNak, 0, h.CallID, &dcerpc.BindNak{ProviderRejectReason: reason, VersionList: []*dcerpc.Version{{Major: 5, Minor: 0}}}, nil, nil)
		if err != nil {
			return err
		}
		return c.write(out)
	}
	if !alter {
		if c.bindDone {
			return nak(dcerpc.ReasonNotSpecified)
		}
		// We send at most what the client can receive; we accept any
		// fragment up to 64 KiB, so the ack advertises the same size.
		c.xmit = clampFrag(int(pdu.MaxRecvFrag))
		c.assoc = pdu.AssocGroupID
		if c.assoc == 0 {
			c.assoc = 0x10000 + c.srv.nextGroup.Add(1)
		}
	} else if !c.bindDone {
		return fmt.Errorf("%w: alter_context before bind", ErrProtocol)
	}

	// Security context.
	var (
		st    *secTrailer
		token []byte
	)
	if h.AuthLen > 0 {
		_, t, tok, err := splitAuth(h, b)
		if err != nil {
			return err
		}
		switch prev := c.auths[t.ContextID]; {
		case prev != nil && (prev.complete || !alter):
			// An established context re-used on alter_context: no new legs.
		case prev != nil:
			// A further leg of an even-legged mechanism (SPNEGO).
			out, err := prev.step(tok, c.srv.Users)
			if err != nil {
				c.log().Info("authentication failed", "err", err)
				return c.write(faultPDU(h.CallID, 0, statusAccessDenied, true))
			}
			st = &secTrailer{AuthType: prev.typ, AuthLevel: prev.level, ContextID: prev.id}
			token = out
		default:
			a, err := c.srv.newAuthContext(t)
			if err != nil {
				c.log().Info("bind refused", "err", err)
				if alter {
					return c.write(faultPDU(h.CallID, 0, statusAccessDenied, true))
				}
				return nak(dcerpc.AuthTypeNotRecognized)
			}
			challenge, err := a.step(tok, c.srv.Users)
			if err != nil {
				c.log().Info("bind refused", "err", err)
				if alter {
					return c.write(faultPDU(h.CallID, 0, statusAccessDenied, true))
				}
				return nak(dcerpc.ReasonNotSpecified)
			}
			c.auths[t.ContextID] = a
			if c.defAuth == nil {
				c.defAuth = a
			}
			st = &secTrailer{AuthType: a.typ, AuthLevel: a.level, ContextID: a.id}
			token = challenge
		}
	}

	results := make([]*dcerpc.Result, 0, len(pdu.ContextList))
	for _, ce := range pdu.ContextList {
		results = append(results, c.negotiate(ce))
	}
	flags := dcerpc.PacketFlag(0)
	if h.Flags&dcerpc.PacketFlagSupportHeaderSign != 0 {
		flags |= dcerpc.PacketFlagSupportHeaderSign
	}
	var out []byte
	if alter {
		out, err = controlPDU(dcerpc.PacketTypeAlterContextResponse, flags, h.CallID, &dcerpc.AlterContextResponse{
			MaxXmitFrag: uint16(c.xmit), MaxRecvFrag: uint16(c.xmit), AssocGroupID: c.assoc, ResultList: results,
		}, st, token)
	} else {
		port := ""
		if ap, err := netipAddrPort(c.nc.LocalAddr()); err == nil {
			port = strconv.Itoa(int(ap.Port()))
		}
		out, err = controlPDU(dcerpc.PacketTypeBindAck, flags, h.CallID, &dcerpc.BindAck{
			MaxXmitFrag: uint16(c.xmit), MaxRecvFrag: uint16(c.xmit), AssocGroupID: c.assoc, PortSpec: port, ResultList: results,
		}, st, token)
	}
	if err != nil {
		return err
	}
	c.bindDone = true
	return c.write(out)
}

func clampFrag(n int) int {
	if n > maxFrag {
		return maxFrag
	}
	if n < 512 {
		return 512
	}
	return n
}

// negotiate decides one presentation context.
func (c *conn) negotiate(ce *dcerpc.Context) *dcerpc.Result {
	for _, ts := range ce.TransferSyntaxes {
		if isBindFeature(ts) {
			// Bind-time feature negotiation: acknowledge, offer nothing.
			return &dcerpc.Result{DefResult: dcerpc.NegotiateAck, TransferSyntax: zeroSyntax}
		}
	}
	iface := c.srv.lookupIface(ce.AbstractSyntax)
	if iface == nil || !c.served[ifaceKey(&iface.Syntax)] {
		return &dcerpc.Result{DefResult: dcerpc.ProviderRejection, ProviderReason: dcerpc.AbstractSyntaxNotSupported, TransferSyntax: zeroSyntax}
	}
	for _, ts := range ce.TransferSyntaxes {
		if isNDR20(ts) {
			c.contexts[ce.ContextID] = iface
			c.bound[iface] = true
			return &dcerpc.Result{DefResult: dcerpc.Acceptance, TransferSyntax: dcerpc.TransferNDRSyntaxV2_0}
		}
	}
	return &dcerpc.Result{DefResult: dcerpc.ProviderRejection, ProviderReason: dcerpc.ProposedTransferSyntaxesNotSupported, TransferSyntax: zeroSyntax}
}

func (c *conn) handleAuth3(h header, b []byte) {
	_, st, tok, err := splitAuth(h, b)
	if err != nil || h.AuthLen == 0 {
		c.log().Info("auth3 without verifier ignored")
		return
	}
	a := c.auths[st.ContextID]
	if a == nil {
		c.log().Info("auth3 for unknown security context ignored")
		return
	}
	if _, err := a.step(tok, c.srv.Users); err != nil {
		// No reply: the client learns on its next request.
		c.log().Info("authentication failed", "err", err)
		return
	}
	if a.nt != nil {
		c.log().Debug("authenticated", "user", a.user, "level", int(a.level), "ntlm_mic", a.nt.sawMIC, "ntlm_version", a.nt.sawVersion)
		return
	}
	c.log().Debug("authenticated", "user", a.user, "level", int(a.level))
}

// handleRequest handles one request fragment; it reports whether the
// connection must hang.
func (c *conn) handleRequest(h header, b []byte) (bool, error) {
	rq, err := decodeRequest(h, b)
	if err != nil {
		return false, err
	}
	fault := func(status uint32) error {
		c.pending = nil
		return c.write(faultPDU(h.CallID, rq.ContextID, status, true))
	}
	off, st, sig, err := splitAuth(h, b)
	if err != nil {
		return false, err
	}
	stubEnd := int(h.FragLen)
	var a *authContext
	if off >= 0 {
		a = c.auths[st.ContextID]
		if a == nil {
			return false, fault(statusAccessDenied)
		}
		stubEnd = off
	} else if c.defAuth != nil {
		a = c.defAuth
	}
	if a != nil {
		if a.failed || !a.complete {
			c.log().Info("request on a failed security context faulted", "opnum", rq.OpNum)
			return false, fault(statusAccessDenied)
		}
		if a.perMessage() {
			if off < 0 || st.AuthLevel != a.level || (a.nt != nil && len(sig) != ntlmSigSize) || stubEnd < rq.StubStart {
				return false, fault(statusAccessDenied)
			}
			if err := a.verify(b[:rq.StubStart], b[rq.StubStart:stubEnd], b[off:off+secTrailerSize], sig); err != nil {
				c.log().Info("request failed verification", "err", err)
				return false, fault(statusSecPkgError)
			}
		}
		if off >= 0 && int(st.PadLen) <= stubEnd-rq.StubStart {
			stubEnd -= int(st.PadLen)
		}
	}
	if stubEnd < rq.StubStart {
		return false, fault(statusProtoError)
	}
	stub := b[rq.StubStart:stubEnd]
	c.log().Debug("request fragment", "call", h.CallID, "opnum", rq.OpNum, "first", h.Flags&dcerpc.PacketFlagFirstFrag != 0, "last", h.Flags&dcerpc.PacketFlagLastFrag != 0, "frag_len", h.FragLen, "stub", len(stub))

	if h.Flags&dcerpc.PacketFlagFirstFrag != 0 {
		c.pending = &pendingCall{callID: h.CallID, ctxID: rq.ContextID, opnum: rq.OpNum, object: rq.Object, auth: a}
	} else if c.pending == nil || c.pending.callID != h.CallID {
		return false, fault(statusProtoError)
	}
	p := c.pending
	if len(p.stub)+len(stub) > maxCallSize {
		return false, fault(statusProtoError)
	}
	p.stub = append(p.stub, stub...)
	if h.Flags&dcerpc.PacketFlagLastFrag == 0 {
		return false, nil
	}
	c.pending = nil
	return c.dispatch(p)
}

func (c *conn) dispatch(p *pendingCall) (bool, error) {
	iface := c.contexts[p.ctxID]
	call := &Call{
		OpNum:      int(p.opnum),
		Object:     p.object,
		ConnID:     c.id,
		LocalAddr:  c.nc.LocalAddr(),
		RemoteAddr: c.nc.RemoteAddr(),
		AuthLevel:  dcerpc.AuthLevelNone,
	}
	if p.auth != nil {
		call.User, call.Admin, call.AuthLevel, call.AuthType = p.auth.user, p.auth.admin, p.auth.level, p.auth.typ
	}
	start := time.Now()
	logCall := func(opName string, result string) {
		c.srv.Logger.Info("rpc",
			"iface", call.Interface, "op", opName, "opnum", call.OpNum,
			"user", call.User, "auth", int(call.AuthType), "level", int(call.AuthLevel),
			"result", result, "conn", c.id, "dur", time.Since(start).Round(time.Microsecond).String())
	}
	fault := func(status uint32, opName string) error {
		logCall(opName, fmt.Sprintf("fault 0x%08x", status))
		return c.write(faultPDU(p.callID, p.ctxID, status, true))
	}
	if iface == nil {
		call.Interface = "?"
		return false, fault(statusUnknownIf, "")
	}
	call.Interface = iface.Name
	if c.srv.Faults.Hang() && iface.Name != "epm" {
		logCall("", "hung")
		return true, nil
	}
	handle := iface.Handle
	if p.object != nil && iface.Object != nil {
		h, ok := iface.Object(c.ctx, p.object)
		if !ok {
			return false, fault(statusUnknownIf, "")
		}
		handle = h
	}
	ctx := context.WithValue(c.ctx, callKey{}, call)
	op, err := safeHandle(ctx, handle, int(p.opnum), p.stub)
	opName := ""
	if op != nil {
		opName = op.OpName()
		if i := strings.LastIndexByte(opName, '/'); i >= 0 {
			opName = opName[i+1:]
		}
	}
	var fe FaultError
	switch {
	case errors.As(err, &fe):
		return false, fault(uint32(fe), opName)
	case errors.Is(err, dcerpc.ErrNotImplemented):
		return false, fault(statusOpRangeError, opName)
	case err != nil && op == nil:
		c.log().Info("bad stub data", "iface", iface.Name, "opnum", p.opnum, "len", len(p.stub), "err", err)
		return false, fault(statusBadStubData, opName)
	case err != nil:
		c.log().Info("handler failed", "iface", iface.Name, "opnum", p.opnum, "err", err)
		return false, fault(statusCallFailed, opName)
	case op == nil:
		return false, fault(statusOpRangeError, opName)
	}
	w := ndr.NDR20(nil, ndr.DefaultDataRepresentation)
	if err := op.MarshalNDRResponse(ctx, w); err != nil {
		c.log().Info("marshal response", "iface", iface.Name, "op", opName, "err", err)
		return false, fault(statusBadStubData, opName)
	}
	logCall(opName, resultOf(op))
	if d, release, ok := c.srv.Faults.takeDelay(iface.Name, int(p.opnum)); ok {
		c.log().Info("response held by fault mode", "iface", iface.Name, "op", opName, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-release:
		case <-c.ctx.Done():
		}
		t.Stop()
	}
	return false, c.sendResponse(p, iface.Name, w.Bytes())
}

// safeHandle runs a generated handler, turning a panic on malformed stub
// data into an error.
func safeHandle(ctx context.Context, h dcerpc.ServerHandle, opnum int, stub []byte) (op dcerpc.Operation, err error) {
	defer func() {
		if r := recover(); r != nil {
			op, err = nil, fmt.Errorf("%w: handler panic: %v", ErrProtocol, r)
		}
	}()
	return h(ctx, opnum, ndr.NDR20(stub, ndr.DefaultDataRepresentation))
}

// resultOf extracts the Return or Status field of a generated operation
// for the log line.
func resultOf(op dcerpc.Operation) string {
	v := reflect.ValueOf(op)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "ok"
	}
	for _, n := range []string{"Return", "Status"} {
		f := v.FieldByName(n)
		if f.IsValid() && f.CanUint() {
			return strconv.FormatUint(f.Uint(), 10)
		}
		if f.IsValid() && f.CanInt() {
			return strconv.FormatInt(f.Int(), 10)
		}
	}
	return "ok"
}

// sendResponse fragments, protects and writes a response.
func (c *conn) sendResponse(p *pendingCall, ifname string, stub []byte) error {
	a := p.auth
	protect := a.perMessage()
	overhead := responseHdrSize
	if protect {
		overhead += secTrailerSize + a.sigSize()
	}
	chunkMax := c.xmit - overhead
	if protect {
		chunkMax -= chunkMax % 16
	}
	// Build every fragment first, so that the log line (which tests read)
	// is written before the client can see the response.
	var frags [][]byte
	largest := 0
	for off, first := 0, true; first || off < len(stub); first = false {
		n := min(chunkMax, len(stub)-off)
		chunk := stub[off : off+n]
		flags := dcerpc.PacketFlag(0)
		if first {
			flags |= dcerpc.PacketFlagFirstFrag
		}
		if off+n == len(stub) {
			flags |= dcerpc.PacketFlagLastFrag
		}
		pad := 0
		authLen := 0
		if protect {
			pad = (16 - n%16) % 16
			authLen = a.sigSize()
		}
		fragLen := responseHdrSize + n + pad
		if protect {
			fragLen += secTrailerSize + authLen
		}
		largest = max(largest, fragLen)
		buf := make([]byte, fragLen)
		h := header{Type: dcerpc.PacketTypeResponse, Flags: flags, FragLen: uint16(fragLen), AuthLen: uint16(authLen), CallID: p.callID}
		h.encode(buf)
		binary.LittleEndian.PutUint32(buf[16:], uint32(len(stub)-off))
		binary.LittleEndian.PutUint16(buf[20:], p.ctxID)
		copy(buf[responseHdrSize:], chunk)
		if protect {
			tOff := responseHdrSize + n + pad
			secTrailer{AuthType: a.typ, AuthLevel: a.level, PadLen: uint8(pad), ContextID: a.id}.encode(buf[tOff:])
			sig, err := a.protect(buf[:responseHdrSize], buf[responseHdrSize:tOff], buf[tOff:tOff+secTrailerSize])
			if err != nil {
				return err
			}
			copy(buf[tOff+secTrailerSize:], sig)
			if spec, ok := c.srv.Faults.takeTamper(ifname, int(p.opnum), a.level); ok {
				i := max(0, min(spec.StubOffset, n+pad-1))
				pos := responseHdrSize + i
				before := buf[pos]
				buf[pos] ^= 1 << (spec.Bit & 7)
				c.srv.Faults.recordTamper(TamperEvent{
					Interface: ifname, OpNum: int(p.opnum), CallID: p.callID, AuthLevel: a.level,
					PDUOffset: pos, StubOffset: i, Before: before, After: buf[pos],
				})
				c.log().Info("response tampered by fault mode", "iface", ifname, "opnum", p.opnum, "offset", pos)
			}
		}
		frags = append(frags, buf)
		off += n
	}
	c.log().Debug("response sent", "call", p.callID, "opnum", p.opnum, "fragments", len(frags), "largest", largest, "limit", c.xmit, "stub", len(stub))
	for _, f := range frags {
		if err := c.write(f); err != nil {
			return err
		}
	}
	return nil
}
