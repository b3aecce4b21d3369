# Drives winemu with impacket's independent DCE/RPC client: ept_map on 135
# (opnum 3, which go-msrpc's client does not use), then svcctl over
# ncacn_ip_tcp without authentication, where OpenSCManagerW must fail with
# ERROR_ACCESS_DENIED. (impacket_svc.py is the authenticated counterpart.)
# Prints "BINDING <string binding>" and "DENIED <code>".
import sys

from impacket.dcerpc.v5 import epm, rpcrt, scmr, transport

ip = sys.argv[1]
binding = epm.hept_map(ip, scmr.MSRPC_UUID_SCMR, protocol="ncacn_ip_tcp")
print("BINDING", binding, flush=True)
dce = transport.DCERPCTransportFactory(binding).get_dce_rpc()
dce.connect()
dce.bind(scmr.MSRPC_UUID_SCMR)
try:
    scmr.hROpenSCManagerW(dce)
    print("OPENED", flush=True)
except rpcrt.DCERPCException as e:
    print("DENIED", e.get_error_code(), flush=True)
dce.disconnect()
