# Drives winemu with impacket's independent DCE/RPC client: ept_map on 135
# (opnum 3, which go-msrpc's client does not use), then svcctl over
# ncacn_ip_tcp without authentication, where OpenSCManagerW must fail with
# ERROR_ACCESS_DENIED. With USER and PASSWORD it authenticates with NTLM at
# packet privacy first (for a wrong password, the request after the
# failed auth3 must be faulted with status 5, as Windows does).
# (impacket_svc.py is the authenticated counterpart.)
# Arguments: IP [USER PASSWORD]
# Prints "BINDING <string binding>" and "DENIED <code>" (a Win32 error
# code, or the fault's name such as rpc_s_access_denied).
import sys

from impacket.dcerpc.v5 import epm, rpcrt, scmr, transport

ip = sys.argv[1]
binding = epm.hept_map(ip, scmr.MSRPC_UUID_SCMR, protocol="ncacn_ip_tcp")
print("BINDING", binding, flush=True)
rpc = transport.DCERPCTransportFactory(binding)
if len(sys.argv) > 3:
    rpc.set_credentials(sys.argv[2], sys.argv[3], "", "", "")
dce = rpc.get_dce_rpc()
if len(sys.argv) > 3:
    dce.set_auth_level(rpcrt.RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
dce.connect()
dce.bind(scmr.MSRPC_UUID_SCMR)
try:
    scmr.hROpenSCManagerW(dce)
    print("OPENED", flush=True)
except rpcrt.DCERPCException as e:
    # A stub-level error has a code; a DCE/RPC fault only its name.
    code = e.get_error_code()
    print("DENIED", code if code is not None else str(e), flush=True)
dce.disconnect()
