package remotereg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/winenc"
)

// MS-RRP constants.
const (
	keyQueryValue      = 0x0001
	keySetValue        = 0x0002
	keyCreateSubKey    = 0x0004
	keyEnumerateSubKey = 0x0008
	accessDeleteKey    = 0x00010000
	maximumAllowed     = 0x02000000
	keyRead            = 0x00020019 // KEY_READ: query, enumerate, notify, read control

	regSZ       = 1
	regExpandSZ = 2
	regDWORD    = 4

	regCreatedNewKey = 1
)

const (
	keyCurrentVersion = `SOFTWARE\Microsoft\Windows NT\CurrentVersion`
	keyEnvironment    = `SYSTEM\CurrentControlSet\Control\Session Manager\Environment`
	keyLsa            = `SYSTEM\CurrentControlSet\Control\Lsa`
	keyPolicySystem   = `SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`
)

// regReader reads values from HKLM over one winreg client.
type regReader struct {
	cli     winreg.WinregClient
	hklm    *winreg.Key
	unknown []string
	open    map[string]*winreg.Key
}

func ustr(s string) *winreg.UnicodeString {
	return &winreg.UnicodeString{Buffer: s + "\x00"}
}

func openHKLM(ctx context.Context, cli winreg.WinregClient, access uint32) (*winreg.Key, error) {
	resp, err := cli.OpenLocalMachine(ctx, &winreg.OpenLocalMachineRequest{DesiredAccess: access})
	if resp != nil && resp.Return != 0 {
		return nil, Win32Error(resp.Return)
	}
	if err != nil {
		return nil, err
	}
	return resp.Key, nil
}

func closeKey(ctx context.Context, cli winreg.WinregClient, k *winreg.Key) {
	if k != nil && ctx.Err() == nil { // after a cancelled call the key dies with the connection
		cctx, cancel := closeContext(ctx)
		defer cancel()
		_, _ = cli.BaseRegCloseKey(cctx, &winreg.BaseRegCloseKeyRequest{Key: k})
	}
}

func openKey(ctx context.Context, cli winreg.WinregClient, parent *winreg.Key, path string, access uint32) (*winreg.Key, error) {
	resp, err := cli.BaseRegOpenKey(ctx, &winreg.BaseRegOpenKeyRequest{Key: parent, SubKey: ustr(path), DesiredAccess: access})
	if resp != nil && resp.Return != 0 {
		return nil, Win32Error(resp.Return)
	}
	if err != nil {
		return nil, err
	}
	return resp.ResultKey, nil
}

// value reads key\name. A missing key or value is (nil, 0, nil) and is
// added to r.unknown.
func (r *regReader) value(ctx context.Context, key, name string) ([]byte, uint32, error) {
	k, ok := r.open[key]
	if !ok {
		var err error
		k, err = openKey(ctx, r.cli, r.hklm, key, keyQueryValue)
		if errors.Is(err, ErrorFileNotFound) {
			k = nil
		} else if err != nil {
			return nil, 0, fmt.Errorf(`open HKLM\%s: %w`, key, err)
		}
		r.open[key] = k
	}
	if k == nil {
		r.unknown = append(r.unknown, key+`\`+name)
		return nil, 0, nil
	}
	size := uint32(512)
	for range 4 {
		resp, err := r.cli.BaseRegQueryValue(ctx, &winreg.BaseRegQueryValueRequest{
			Key: k, ValueName: ustr(name), Data: make([]byte, size), DataLength: size,
		})
		code := uint32(0)
		if resp != nil {
			code = resp.Return
		}
		switch {
		case code == uint32(ErrorFileNotFound):
			r.unknown = append(r.unknown, key+`\`+name)
			return nil, 0, nil
		case code == uint32(ErrorMoreData) && resp.DataLength > size:
			size = resp.DataLength
			continue
		case code != 0:
			return nil, 0, fmt.Errorf(`query HKLM\%s\%s: %w`, key, name, Win32Error(code))
		case err != nil:
			return nil, 0, fmt.Errorf(`query HKLM\%s\%s: %w`, key, name, err)
		}
		data := resp.Data
		if int(resp.Length) < len(data) {
			data = data[:resp.Length]
		}
		return data, resp.Type, nil
	}
	return nil, 0, fmt.Errorf(`query HKLM\%s\%s: value keeps growing`, key, name)
}

func (r *regReader) str(ctx context.Context, key, name string) (string, error) {
	b, typ, err := r.value(ctx, key, name)
	if err != nil || b == nil {
		return "", err
	}
	switch typ {
	case regSZ, regExpandSZ:
		return decodeUTF16(b), nil
	case regDWORD:
		if len(b) >= 4 {
			return fmt.Sprint(binary.LittleEndian.Uint32(b)), nil
		}
	}
	return "", nil
}

func (r *regReader) dword(ctx context.Context, key, name string) (*uint32, error) {
	b, typ, err := r.value(ctx, key, name)
	if err != nil || b == nil {
		return nil, err
	}
	if typ == regDWORD && len(b) >= 4 {
		v := binary.LittleEndian.Uint32(b)
		return &v, nil
	}
	if typ == regSZ { // some tools write numbers as strings
		var v uint32
		if _, err := fmt.Sscan(decodeUTF16(b), &v); err == nil {
			return &v, nil
		}
	}
	r.unknown = append(r.unknown, key+`\`+name)
	return nil, nil
}

// decodeUTF16 decodes a registry string up to its first NUL.
func decodeUTF16(b []byte) string {
	s, _, _ := strings.Cut(winenc.DecodeUTF16LE(b), "\x00")
	return s
}

// encodeUTF16Z encodes s as a NUL-terminated registry string.
func encodeUTF16Z(s string) []byte { return winenc.EncodeUTF16LE(s + "\x00") }

// readPreflight reads the Preflight values over cli.
func readPreflight(ctx context.Context, cli winreg.WinregClient) (*deploy.Preflight, error) {
	return readValues(ctx, cli, maximumAllowed)
}

// readValues is readPreflight with HKLM opened for access (a check asks
// for keyRead only).
func readValues(ctx context.Context, cli winreg.WinregClient, access uint32) (*deploy.Preflight, error) {
	hklm, err := openHKLM(ctx, cli, access)
	if err != nil {
		return nil, fmt.Errorf("open HKLM: %w", err)
	}
	r := &regReader{cli: cli, hklm: hklm, open: map[string]*winreg.Key{}}
	defer func() {
		cctx := context.WithoutCancel(ctx)
		for _, k := range r.open {
			closeKey(cctx, cli, k)
		}
		closeKey(cctx, cli, hklm)
	}()
	p := &deploy.Preflight{}
	var errs []error
	s := func(dst *string, key, name string) {
		v, err := r.str(ctx, key, name)
		errs = append(errs, err)
		*dst = v
	}
	d := func(dst **uint32, key, name string) {
		v, err := r.dword(ctx, key, name)
		errs = append(errs, err)
		*dst = v
	}
	s(&p.Product, keyCurrentVersion, "ProductName")
	var display, release, current, build, ubr string
	s(&display, keyCurrentVersion, "DisplayVersion")
	s(&release, keyCurrentVersion, "ReleaseId")
	s(&current, keyCurrentVersion, "CurrentVersion")
	p.Version = firstNonEmpty(display, release, current)
	s(&build, keyCurrentVersion, "CurrentBuildNumber")
	if build == "" {
		s(&build, keyCurrentVersion, "CurrentBuild")
	}
	if build != "" {
		s(&ubr, keyCurrentVersion, "UBR")
		if ubr != "" {
			build += "." + ubr
		}
	}
	p.Build = build
	s(&p.SystemRoot, keyCurrentVersion, "SystemRoot")
	s(&p.Arch, keyEnvironment, "PROCESSOR_ARCHITECTURE")
	d(&p.ForceGuest, keyLsa, "forceguest")
	d(&p.LmCompatibilityLevel, keyLsa, "LmCompatibilityLevel")
	d(&p.LocalAccountTokenFilterPolicy, keyPolicySystem, "LocalAccountTokenFilterPolicy")
	p.Unknown = r.unknown
	if err := errors.Join(errs...); err != nil {
		return p, err
	}
	return p, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// paramKeyPath is the parameter key of a spec under HKLM.
func paramKeyPath(spec deploy.LaunchSpec) string {
	return `SOFTWARE\` + spec.Vendor + `\` + spec.Applet + `\` + spec.SessionID
}

// writeParams creates HKLM\SOFTWARE\<Vendor>\<Applet>\<SessionID> level
// by level and sets the parameters as REG_SZ values. A level that exists
// already is not ours and is left alone; for each missing one it journals
// the key (deepest last) before BaseRegCreateKey, so that a cancel or a
// crash during the call leaves a record of it. It returns the keys it
// created. On failure it removes what it created on the same connection
// (unless ctx ended, which leaves that connection unusable) and returns,
// with the error, the keys it could not remove; a key whose create call
// was interrupted is among them (see Handle.interrupted).
func (l *Launcher) writeParams(ctx context.Context, cli winreg.WinregClient, t target, spec deploy.LaunchSpec, j journal) ([]Change, error) {
	hklm, err := openHKLM(ctx, cli, maximumAllowed)
	if err != nil {
		return nil, fmt.Errorf("open HKLM: %w", err)
	}
	defer closeKey(ctx, cli, hklm)
	var created []Change
	// undo removes the keys created so far, newest first, and returns
	// those it could not remove (still journaled) for the caller to
	// retry on a fresh connection.
	undo := func() []Change {
		cctx, cancel := l.cleanupContext(ctx)
		defer cancel()
		var left []Change
		for i := len(created) - 1; i >= 0; i-- {
			if ctx.Err() == nil && deleteKey(cctx, cli, created[i].Name) == nil {
				_ = resolve(cctx, j, created[i])
				continue
			}
			left = append([]Change{created[i]}, left...)
		}
		return left
	}
	parts := strings.Split(paramKeyPath(spec), `\`)
	var k *winreg.Key
	for i := 1; i < len(parts); i++ {
		path := strings.Join(parts[:i+1], `\`)
		// An existing level is not ours: it is neither journaled nor
		// removed.
		ek, err := openKey(ctx, cli, hklm, path, keyQueryValue)
		if err != nil && !errors.Is(err, ErrorFileNotFound) {
			return undo(), fmt.Errorf(`open HKLM\%s: %w`, path, err)
		}
		var c Change
		if err == nil {
			closeKey(ctx, cli, ek)
		} else {
			c = Change{Kind: ChangeRegistryKey, Addr: t.Addr, Name: path}
			if err := record(ctx, j, c); err != nil {
				_ = resolve(context.WithoutCancel(ctx), j, c) // nothing was created
				return undo(), fmt.Errorf("journal: %w", err)
			}
			created = append(created, c)
		}
		req := &winreg.BaseRegCreateKeyRequest{
			Key: hklm, SubKey: ustr(path), Class: &winreg.UnicodeString{},
			DesiredAccess: keySetValue | keyCreateSubKey | keyQueryValue,
		}
		if i == len(parts)-1 { // the session's key: administrators only
			req.DesiredAccess |= writeDAC | readControl
			req.SecurityAttributes = paramKeyAttributes()
		}
		resp, err := cli.BaseRegCreateKey(ctx, req)
		if resp != nil && resp.Return != 0 {
			err = Win32Error(resp.Return)
		}
		var w Win32Error
		if c.Name != "" && (errors.As(err, &w) || err == nil && resp.Disposition != regCreatedNewKey) {
			// The server created nothing, or someone else made the key
			// meanwhile: not ours.
			created = created[:len(created)-1]
			_ = resolve(context.WithoutCancel(ctx), j, c)
		}
		if err != nil {
			return undo(), fmt.Errorf(`create HKLM\%s: %w`, path, err)
		}
		if i < len(parts)-1 {
			closeKey(ctx, cli, resp.ResultKey)
		} else {
			k = resp.ResultKey
		}
	}
	defer closeKey(ctx, cli, k)
	// Windows applies the descriptor at creation; Samba ignores it there
	// but honours BaseRegSetKeySecurity. Where neither works the values
	// are still written: they are the vendor's parameters, which the
	// documentation says must not be secrets (lanconnect's own secret,
	// the check-in ticket, is never stored in the registry).
	if err := protectKey(ctx, cli, k); err != nil {
		l.log().Warn("the parameter key is readable by more than administrators", "host", t.Addr, "key", `HKLM\`+paramKeyPath(spec), "err", err)
	}
	names := make([]string, 0, len(spec.Params))
	for n := range spec.Params {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data := encodeUTF16Z(spec.Params[n])
		resp, err := cli.BaseRegSetValue(ctx, &winreg.BaseRegSetValueRequest{Key: k, ValueName: ustr(n), Type: regSZ, Data: data})
		if resp != nil && resp.Return != 0 {
			err = Win32Error(resp.Return)
		}
		if err != nil {
			return undo(), fmt.Errorf("set value %q: %w", n, err)
		}
	}
	return created, nil
}

// deleteKey deletes HKLM\path (which must have no subkeys). A missing key
// is not an error.
func deleteKey(ctx context.Context, cli winreg.WinregClient, path string) error {
	hklm, err := openHKLM(ctx, cli, maximumAllowed)
	if err != nil {
		return fmt.Errorf("open HKLM: %w", err)
	}
	defer closeKey(ctx, cli, hklm)
	resp, err := cli.BaseRegDeleteKey(ctx, &winreg.BaseRegDeleteKeyRequest{Key: hklm, SubKey: ustr(path)})
	if resp != nil && resp.Return != 0 {
		if resp.Return == uint32(ErrorFileNotFound) {
			return nil
		}
		return fmt.Errorf(`delete HKLM\%s: %w`, path, Win32Error(resp.Return))
	}
	if err != nil {
		return fmt.Errorf(`delete HKLM\%s: %w`, path, err)
	}
	return nil
}

// winregUnavailable reports whether opening \pipe\winreg failed because
// nothing serves it (Remote Registry stopped).
func winregUnavailable(err error) bool {
	return errors.Is(err, smbconn.StatusObjectNameNotFound) || errors.Is(err, smbconn.StatusPipeNotAvailable)
}

// remoteRegistryService is the Remote Registry service's name.
const remoteRegistryService = "RemoteRegistry"

// winreg connects to \pipe\winreg. When the pipe is not there, it starts
// the Remote Registry service through the SCM (setting it to manual start
// first when it is disabled), journals the original state, and tries
// again until the pipe appears or ctx ends.
func (l *Launcher) winreg(ctx context.Context, t target, j journal) (winreg.WinregClient, *rpcConn, []Change, error) {
	cli, conn, err := l.winregOverPipe(ctx, t)
	if err == nil {
		return cli, conn, nil, nil
	}
	if !winregUnavailable(err) {
		return nil, nil, nil, l.failure("connect winreg", endpointOf(err, pipeEndpoint(t, "winreg")), err)
	}
	l.log().Info("winreg pipe not available; starting Remote Registry", "host", t.Addr)
	changes, serr := l.startRemoteRegistry(ctx, t, j)
	if serr != nil {
		return nil, nil, changes, serr
	}
	// The pipe appears shortly after the service reports running.
	var lastErr error
	rerr := l.backoff().Retry(ctx, func(ctx context.Context) error {
		cli, conn, lastErr = l.winregOverPipe(ctx, t)
		return lastErr
	}, winregUnavailable)
	if rerr != nil {
		return nil, nil, changes, l.failure("connect winreg", pipeEndpoint(t, "winreg"), rerr)
	}
	return cli, conn, changes, nil
}

// startRemoteRegistry makes the Remote Registry service run, recording
// its original state first.
func (l *Launcher) startRemoteRegistry(ctx context.Context, t target, j journal) ([]Change, error) {
	cli, conn, err := l.dialSCM(ctx, t)
	if err != nil {
		return nil, err
	}
	defer conn.close(context.WithoutCancel(ctx))
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		return nil, l.failure("open scm", conn.endpoint, err)
	}
	defer m.close(ctx)
	c, err := l.ensureRunning(ctx, m, t.Addr, remoteRegistryService, conn.transport, j)
	if err != nil {
		return c, l.failure("start Remote Registry", conn.endpoint, err)
	}
	return c, nil
}

// ensureRunning starts service name if it is not running, setting a
// disabled service to manual start first. Before changing anything it
// records a ChangeServiceState with the original start type and state.
func (l *Launcher) ensureRunning(ctx context.Context, m *scm, host, name string, tr Transport, j journal) ([]Change, error) {
	h, err := m.open(ctx, name, serviceQueryStatus|serviceQueryConfig|serviceChangeConfig|serviceStart|serviceStop)
	if err != nil {
		return nil, fmt.Errorf("open service %s: %w", name, err)
	}
	defer m.closeService(ctx, h)
	st, err := m.status(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", name, err)
	}
	if State(st.CurrentState) == StateRunning {
		return nil, nil
	}
	cfg, err := m.config(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("query %s config: %w", name, err)
	}
	c := Change{Kind: ChangeServiceState, Addr: host, Name: name, StartType: StartType(cfg.StartType), WasRunning: false, Transport: tr}
	if err := record(ctx, j, c); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	changes := []Change{c}
	if c.StartType == StartDisabled {
		if err := m.setStartType(ctx, h, StartDemand); err != nil {
			return changes, fmt.Errorf("set %s to manual start: %w", name, err)
		}
	}
	if err := m.start(ctx, h); err != nil && !errors.Is(err, ErrorServiceAlreadyRunning) {
		return changes, fmt.Errorf("start %s: %w", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, l.startWait())
	defer cancel()
	if _, err := m.waitState(wctx, h, StateRunning, l.backoff()); err != nil {
		return changes, fmt.Errorf("wait for %s: %w", name, err)
	}
	return changes, nil
}

// preflight reads the target's OS and security settings through Remote
// Registry (starting it through the SCM if needed, journaled in j) and
// returns them: Product, Version, Build, Arch, SystemRoot and the Lsa and
// UAC values; RemoteRegistryOff is left false. Missing keys are normal on
// many systems and are reported in Unknown, not as errors.
func (l *Launcher) preflight(ctx context.Context, t target, j journal) (*deploy.Preflight, error) {
	cli, conn, _, err := l.winreg(ctx, t, j)
	if err != nil {
		return nil, err
	}
	defer conn.close(context.WithoutCancel(ctx))
	p, err := readPreflight(ctx, cli)
	if err != nil {
		return p, l.failure("preflight", conn.endpoint, err)
	}
	return p, nil
}
