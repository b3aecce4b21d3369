package krbtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/oiweiwei/gokrb5.fork/v9/crypto"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/errorcode"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/flags"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/keyusage"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/msgtype"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/patype"
	"github.com/oiweiwei/gokrb5.fork/v9/keytab"
	"github.com/oiweiwei/gokrb5.fork/v9/messages"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// KDC serves one realm on a TCP listener. Make it with Start; the caller
// closes it.
type KDC struct {
	realm string
	etype int32
	ln    net.Listener

	mu       sync.Mutex
	users    map[string]string // user name -> password
	krbtgt   *keytab.Keytab
	services *keytab.Keytab
	spns     map[string]bool // lower-case SPN
	as, tgs  int

	wg sync.WaitGroup
}

// Start listens on addr (host:port, port 0 for any) and serves realm.
// Etype is the encryption type of every key and ticket it makes (IANA
// number: 18 AES256, 17 AES128, 23 RC4-HMAC); 0 means AES256.
func Start(ctx context.Context, addr, realm string, etype int32) (*KDC, error) {
	if etype == 0 {
		etype = etypeID.AES256_CTS_HMAC_SHA1_96
	}
	if _, err := crypto.GetEtype(etype); err != nil {
		return nil, fmt.Errorf("krbtest: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("krbtest: %w", err)
	}
	k := &KDC{realm: strings.ToUpper(realm), etype: etype, ln: ln, users: map[string]string{},
		krbtgt: keytab.New(), services: keytab.New(), spns: map[string]bool{}}
	if err := k.krbtgt.AddEntry("krbtgt/"+k.realm, k.realm, randomSecret(), time.Now(), 1, etype); err != nil {
		ln.Close()
		return nil, fmt.Errorf("krbtest: krbtgt key: %w", err)
	}
	k.wg.Add(1)
	go k.serve()
	return k, nil
}

// Addr returns the address the KDC listens on (host:port).
func (k *KDC) Addr() string { return k.ln.Addr().String() }

// Realm returns the realm, in upper case.
func (k *KDC) Realm() string { return k.realm }

// AddUser lets user log on with password (AS exchange).
func (k *KDC) AddUser(user, password string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.users[strings.ToLower(user)] = password
}

// AddService gives each SPN (for example host/pc.lab.example) a key of its
// own, in the keytab that Keytab returns, and lets clients get tickets for
// it (TGS exchange).
func (k *KDC) AddService(spns ...string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, spn := range spns {
		if err := k.services.AddEntry(spn, k.realm, randomSecret(), time.Now(), 1, k.etype); err != nil {
			return fmt.Errorf("krbtest: key of %s: %w", spn, err)
		}
		k.spns[strings.ToLower(spn)] = true
	}
	return nil
}

// Keytab returns the keys of the services added so far, as the computer
// that holds them would have them (for winemu's Server.Keytab).
func (k *KDC) Keytab() *keytab.Keytab {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, err := k.services.Marshal()
	if err != nil {
		panic(err)
	}
	kt := keytab.New()
	if err := kt.Unmarshal(b); err != nil {
		panic(err)
	}
	return kt
}

// Exchanges returns how many AS and TGS exchanges were answered with a
// ticket.
func (k *KDC) Exchanges() (as, tgs int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.as, k.tgs
}

// Close stops listening and waits for the connections being served.
func (k *KDC) Close() error {
	err := k.ln.Close()
	k.wg.Wait()
	return err
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (k *KDC) serve() {
	defer k.wg.Done()
	for {
		c, err := k.ln.Accept()
		if err != nil {
			return
		}
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			for {
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				l := binary.BigEndian.Uint32(n[:])
				if l > 1<<20 {
					return
				}
				req := make([]byte, l)
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				rep := k.answer(req)
				binary.BigEndian.PutUint32(n[:], uint32(len(rep)))
				if _, err := c.Write(append(n[:], rep...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer returns the reply to one KDC request: a ticket, or a KRB-ERROR.
func (k *KDC) answer(req []byte) []byte {
	var (
		rep  []byte
		err  error
		code int32 = errorcode.KRB_ERR_GENERIC
	)
	if len(req) > 0 && req[0] == 0x6a { // [APPLICATION 10] AS-REQ
		rep, code, err = k.asExchange(req)
	} else {
		rep, code, err = k.tgsExchange(req)
	}
	if err == nil {
		return rep
	}
	e := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/"+k.realm), k.realm, code, err.Error())
	b, merr := e.Marshal()
	if merr != nil {
		return nil
	}
	return b
}

// ticketFlags are the flags of every ticket: forwardable, renewable,
// initial (AS) or not, pre-authenticated.
func ticketFlags(initial bool) asn1.BitString {
	f := types.NewKrbFlags()
	types.SetFlag(&f, flags.Forwardable)
	types.SetFlag(&f, flags.Renewable)
	types.SetFlag(&f, flags.PreAuthent)
	if initial {
		types.SetFlag(&f, flags.Initial)
	}
	return f
}

func (k *KDC) asExchange(b []byte) ([]byte, int32, error) {
	var req messages.ASReq
	if err := req.Unmarshal(b); err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	cname := req.ReqBody.CName
	k.mu.Lock()
	pass, ok := k.users[strings.ToLower(cname.PrincipalNameString())]
	k.mu.Unlock()
	if !ok {
		return nil, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN, errors.New("unknown client")
	}
	ukey, _, err := crypto.GetKeyFromPassword(pass, cname, k.realm, k.etype, nil)
	if err != nil {
		return nil, errorcode.KDC_ERR_ETYPE_NOSUPP, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	end, renew := now.Add(10*time.Hour), now.Add(7*24*time.Hour)
	fl := ticketFlags(true)
	tgt, skey, err := messages.NewTicket(cname, k.realm, req.ReqBody.SName, k.realm, fl, k.krbtgt, k.etype, 1, now, now, end, renew)
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	enc := messages.EncKDCRepPart{Key: skey, LastReqs: []messages.LastReq{{LRType: 0, LRValue: now}}, Nonce: req.ReqBody.Nonce,
		Flags: fl, AuthTime: now, StartTime: now, EndTime: end, RenewTill: renew, SRealm: k.realm, SName: req.ReqBody.SName}
	ed, err := seal(enc, ukey, keyusage.AS_REP_ENCPART)
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	rep := messages.ASRep{KDCRepFields: messages.KDCRepFields{PVNO: 5, MsgType: msgtype.KRB_AS_REP, CRealm: k.realm, CName: cname, Ticket: tgt, EncPart: ed}}
	out, err := rep.Marshal()
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	k.mu.Lock()
	k.as++
	k.mu.Unlock()
	return out, 0, nil
}

func (k *KDC) tgsExchange(b []byte) ([]byte, int32, error) {
	var req messages.TGSReq
	if err := req.Unmarshal(b); err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	var ap messages.APReq
	found := false
	for _, pa := range req.PAData {
		if pa.PADataType == patype.PA_TGS_REQ {
			if err := ap.Unmarshal(pa.PADataValue); err != nil {
				return nil, errorcode.KRB_ERR_GENERIC, err
			}
			found = true
		}
	}
	if !found {
		return nil, errorcode.KDC_ERR_PADATA_TYPE_NOSUPP, errors.New("no PA-TGS-REQ")
	}
	if err := ap.Ticket.DecryptEncPart(k.krbtgt, nil); err != nil {
		return nil, errorcode.KRB_AP_ERR_BAD_INTEGRITY, err
	}
	tgt := ap.Ticket.DecryptedEncPart
	sname := req.ReqBody.SName
	k.mu.Lock()
	known := k.spns[strings.ToLower(sname.PrincipalNameString())]
	k.mu.Unlock()
	if !known {
		return nil, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN, errors.New("unknown service")
	}
	now := time.Now().UTC().Truncate(time.Second)
	end := now.Add(10 * time.Hour)
	fl := ticketFlags(false)
	k.mu.Lock()
	tkt, skey, err := messages.NewTicket(tgt.CName, tgt.CRealm, sname, k.realm, fl, k.services, k.etype, 1, tgt.AuthTime, now, end, end)
	k.mu.Unlock()
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	enc := messages.EncKDCRepPart{Key: skey, LastReqs: []messages.LastReq{{LRType: 0, LRValue: now}}, Nonce: req.ReqBody.Nonce,
		Flags: fl, AuthTime: tgt.AuthTime, StartTime: now, EndTime: end, RenewTill: end, SRealm: k.realm, SName: sname}
	ed, err := seal(enc, tgt.Key, keyusage.TGS_REP_ENCPART_SESSION_KEY)
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	rep := messages.TGSRep{KDCRepFields: messages.KDCRepFields{PVNO: 5, MsgType: msgtype.KRB_TGS_REP, CRealm: tgt.CRealm, CName: tgt.CName, Ticket: tkt, EncPart: ed}}
	out, err := rep.Marshal()
	if err != nil {
		return nil, errorcode.KRB_ERR_GENERIC, err
	}
	k.mu.Lock()
	k.tgs++
	k.mu.Unlock()
	return out, 0, nil
}

// seal marshals enc and encrypts it with key for usage.
func seal(enc messages.EncKDCRepPart, key types.EncryptionKey, usage uint32) (types.EncryptedData, error) {
	b, err := enc.Marshal()
	if err != nil {
		return types.EncryptedData{}, err
	}
	return crypto.GetEncryptedData(b, key, usage, 0)
}
