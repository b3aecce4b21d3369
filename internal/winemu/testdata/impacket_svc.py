# Drives winemu's SCM with impacket, an independent DCE/RPC and NTLM
# client, the way an administrator's script drives Windows: svcctl found
# through the endpoint mapper, ncacn_ip_tcp, NTLM at packet privacy;
# create a demand-start service, start it, stop it, delete it.
# Arguments: IP USER PASSWORD SERVICE_NAME BINARY_PATH [AUTH_LEVEL]
# (AUTH_LEVEL defaults to 6, RPC_C_AUTHN_LEVEL_PKT_PRIVACY.)
# Prints one line per step ("CREATED", "STARTED <state>", "STOPPED
# <state>", "DELETED"); any failure raises, so the exit code is non-zero.
# After STARTED it waits for a line on stdin, so that the caller can look
# at the running service before it is stopped.
import sys
import time

from impacket.dcerpc.v5 import epm, rpcrt, scmr, transport

ip, user, password, name, binary = sys.argv[1:6]

binding = epm.hept_map(ip, scmr.MSRPC_UUID_SCMR, protocol="ncacn_ip_tcp")
print("BINDING", binding, flush=True)
rpc = transport.DCERPCTransportFactory(binding)
rpc.set_credentials(user, password, "", "", "")
dce = rpc.get_dce_rpc()
level = int(sys.argv[6]) if len(sys.argv) > 6 else rpcrt.RPC_C_AUTHN_LEVEL_PKT_PRIVACY
dce.set_auth_level(level)
dce.connect()
dce.bind(scmr.MSRPC_UUID_SCMR)

scm = scmr.hROpenSCManagerW(dce)["lpScHandle"]
svc = scmr.hRCreateServiceW(
    dce, scm, name + "\x00", name + "\x00",
    lpBinaryPathName=binary + "\x00",
    dwStartType=scmr.SERVICE_DEMAND_START,
)["lpServiceHandle"]
print("CREATED", flush=True)

scmr.hRStartServiceW(dce, svc)
state = scmr.hRQueryServiceStatus(dce, svc)["lpServiceStatus"]["dwCurrentState"]
print("STARTED", state, flush=True)
sys.stdin.readline()

scmr.hRControlService(dce, svc, scmr.SERVICE_CONTROL_STOP)
deadline = time.monotonic() + 10
while True:
    state = scmr.hRQueryServiceStatus(dce, svc)["lpServiceStatus"]["dwCurrentState"]
    if state == scmr.SERVICE_STOPPED or time.monotonic() > deadline:
        break
    time.sleep(0.1)
print("STOPPED", state, flush=True)

scmr.hRDeleteService(dce, svc)
scmr.hRCloseServiceHandle(dce, svc)
scmr.hRCloseServiceHandle(dce, scm)
print("DELETED", flush=True)
dce.disconnect()
