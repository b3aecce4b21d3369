package diag

import "fmt"

// status is one row of a status table: the symbolic name and a sentence
// a technician can read.
type status struct{ name, meaning string }

// win32 holds the Win32 error codes (MS-ERREF 2.2) that an SCM, registry,
// RPC or file call of the SDK can return to a technician.
var win32 = map[uint32]status{
	0:    {"ERROR_SUCCESS", "the operation succeeded"},
	1:    {"ERROR_INVALID_FUNCTION", "the computer does not support this function"},
	2:    {"ERROR_FILE_NOT_FOUND", "the file, registry value or service named does not exist"},
	3:    {"ERROR_PATH_NOT_FOUND", "a folder of the path does not exist"},
	5:    {"ERROR_ACCESS_DENIED", "the account may not do this: it is not an administrator there, or UAC remote restrictions filter its token"},
	6:    {"ERROR_INVALID_HANDLE", "the handle is not valid (closed, or from a lost connection)"},
	8:    {"ERROR_NOT_ENOUGH_MEMORY", "the computer ran out of memory (or of a server resource such as RPC buffers) for this call"},
	14:   {"ERROR_OUTOFMEMORY", "the computer ran out of memory for this call"},
	32:   {"ERROR_SHARING_VIOLATION", "another process has the file open"},
	50:   {"ERROR_NOT_SUPPORTED", "the computer does not support this request"},
	53:   {"ERROR_BAD_NETPATH", "the network path was not found: the computer is unreachable, or File and Printer Sharing is off"},
	64:   {"ERROR_NETNAME_DELETED", "the network connection was closed by the computer"},
	67:   {"ERROR_BAD_NET_NAME", "the share name was not found on the computer"},
	87:   {"ERROR_INVALID_PARAMETER", "the computer rejected a parameter of the call"},
	112:  {"ERROR_DISK_FULL", "the computer's disk is full"},
	120:  {"ERROR_CALL_NOT_IMPLEMENTED", "the computer does not implement this call"},
	123:  {"ERROR_INVALID_NAME", "the file, service or key name is not valid"},
	183:  {"ERROR_ALREADY_EXISTS", "an object of that name already exists"},
	193:  {"ERROR_BAD_EXE_FORMAT", "the file is not a Windows program for this computer's processor (x64, x86, ARM64), or it is damaged"},
	234:  {"ERROR_MORE_DATA", "more data is available than the buffer holds"},
	259:  {"ERROR_NO_MORE_ITEMS", "there are no more items to list"},
	1051: {"ERROR_DEPENDENT_SERVICES_RUNNING", "other running services depend on this service"},
	1052: {"ERROR_INVALID_SERVICE_CONTROL", "the service does not accept this control"},
	1053: {"ERROR_SERVICE_REQUEST_TIMEOUT", "the program started but never reported to the Service Control Manager that it runs, so Windows stopped it: it is not written as a service"},
	1054: {"ERROR_SERVICE_NO_THREAD", "the service's process could not create a thread"},
	1055: {"ERROR_SERVICE_DATABASE_LOCKED", "the service database is locked by another change"},
	1056: {"ERROR_SERVICE_ALREADY_RUNNING", "the service is already running"},
	1058: {"ERROR_SERVICE_DISABLED", "the service is disabled and cannot be started"},
	1060: {"ERROR_SERVICE_DOES_NOT_EXIST", "no service of that name is installed"},
	1061: {"ERROR_SERVICE_CANNOT_ACCEPT_CTRL", "the service cannot accept control messages now (it is starting or stopping)"},
	1062: {"ERROR_SERVICE_NOT_ACTIVE", "the service is not running"},
	1063: {"ERROR_FAILED_SERVICE_CONTROLLER_CONNECT", "the program is not a service: it did not connect to the Service Control Manager"},
	1069: {"ERROR_SERVICE_LOGON_FAILED", "the service could not log on as its configured account"},
	1072: {"ERROR_SERVICE_MARKED_FOR_DELETE", "the service is marked for deletion and goes when its last handle closes"},
	1073: {"ERROR_SERVICE_EXISTS", "a service of that name is already installed"},
	1078: {"ERROR_DUPLICATE_SERVICE_NAME", "the name is already used as a service name or display name"},
	1115: {"ERROR_SHUTDOWN_IN_PROGRESS", "the computer is shutting down"},
	1326: {"ERROR_LOGON_FAILURE", "the user name or password is wrong"},
	1385: {"ERROR_LOGON_TYPE_NOT_GRANTED", "the account may not log on over the network on this computer"},
	1717: {"RPC_S_UNKNOWN_IF", "the computer does not serve this RPC interface"},
	1722: {"RPC_S_SERVER_UNAVAILABLE", "the RPC server is unavailable: a firewall blocks it or the service is not running"},
	1726: {"RPC_S_CALL_FAILED", "the RPC call failed after it was sent"},
	1745: {"RPC_S_PROCNUM_OUT_OF_RANGE", "the computer does not implement this RPC call"},
	1753: {"EPT_S_NOT_REGISTERED", "the endpoint mapper has no endpoint for this service: it is not running"},
	1764: {"RPC_S_CANNOT_SUPPORT", "the computer does not support this RPC request"},
}

// ntstatus holds the NTSTATUS codes (MS-ERREF 2.3) that an SMB server
// can answer to the SDK.
var ntstatus = map[uint32]status{
	0x00000000: {"STATUS_SUCCESS", "the operation succeeded"},
	0x00000103: {"STATUS_PENDING", "the operation has not finished yet"},
	0xC0000016: {"STATUS_MORE_PROCESSING_REQUIRED", "the logon needs another round trip"},
	0xC000000D: {"STATUS_INVALID_PARAMETER", "the server rejected a parameter of the request"},
	0xC0000011: {"STATUS_END_OF_FILE", "the read reached the end of the file"},
	0xC0000022: {"STATUS_ACCESS_DENIED", "the account may not do this: it is not an administrator there, or UAC remote restrictions filter its token"},
	0xC0000034: {"STATUS_OBJECT_NAME_NOT_FOUND", "the file or pipe does not exist"},
	0xC0000035: {"STATUS_OBJECT_NAME_COLLISION", "a file of that name already exists"},
	0xC000003A: {"STATUS_OBJECT_PATH_NOT_FOUND", "a folder of the path does not exist"},
	0xC0000043: {"STATUS_SHARING_VIOLATION", "another process has the file open"},
	0xC000005E: {"STATUS_NO_LOGON_SERVERS", "the computer could not reach a domain controller to check the logon"},
	0xC0000064: {"STATUS_NO_SUCH_USER", "the computer does not know this user"},
	0xC000006A: {"STATUS_WRONG_PASSWORD", "the password is wrong"},
	0xC000006D: {"STATUS_LOGON_FAILURE", "the user name or password is wrong"},
	0xC000006E: {"STATUS_ACCOUNT_RESTRICTION", "an account restriction applies (for example a blank password over the network)"},
	0xC000006F: {"STATUS_INVALID_LOGON_HOURS", "the account may not log on at this time of day"},
	0xC0000070: {"STATUS_INVALID_WORKSTATION", "the account may not log on from this console's computer"},
	0xC0000071: {"STATUS_PASSWORD_EXPIRED", "the account's password has expired"},
	0xC0000072: {"STATUS_ACCOUNT_DISABLED", "the account is disabled"},
	0xC000007F: {"STATUS_DISK_FULL", "the computer's disk is full"},
	0xC00000AC: {"STATUS_PIPE_NOT_AVAILABLE", "the named pipe exists but no server instance is free: the service behind it is stopped or busy"},
	0xC00000BB: {"STATUS_NOT_SUPPORTED", "the server does not support this request"},
	0xC00000BE: {"STATUS_BAD_NETWORK_PATH", "the network path was not found"},
	0xC00000C9: {"STATUS_NETWORK_NAME_DELETED", "the share or connection was closed by the server"},
	0xC00000CA: {"STATUS_NETWORK_ACCESS_DENIED", "the server refused network access to the share for this account"},
	0xC00000CC: {"STATUS_BAD_NETWORK_NAME", "the share does not exist on the computer"},
	0xC0000121: {"STATUS_CANNOT_DELETE", "the file cannot be deleted (read-only, or in use)"},
	0xC0000128: {"STATUS_FILE_CLOSED", "the file handle was already closed"},
	0xC000014B: {"STATUS_PIPE_BROKEN", "the other end closed the named pipe"},
	0xC000015B: {"STATUS_LOGON_TYPE_NOT_GRANTED", "the account may not log on over the network on this computer"},
	0xC000018D: {"STATUS_TRUSTED_RELATIONSHIP_FAILURE", "the computer's trust with its domain is broken"},
	0xC0000193: {"STATUS_ACCOUNT_EXPIRED", "the account has expired"},
	0xC0000203: {"STATUS_USER_SESSION_DELETED", "the server ended the SMB session"},
	0xC0000224: {"STATUS_PASSWORD_MUST_CHANGE", "the password must be changed before the account can log on"},
	0xC0000234: {"STATUS_ACCOUNT_LOCKED_OUT", "the account is locked out after too many failed logons"},
	0xC000035C: {"STATUS_NETWORK_SESSION_EXPIRED", "the SMB session expired and must log on again"},
	0xC0000388: {"STATUS_DOWNGRADE_DETECTED", "the server detected a downgrade of the negotiation: something in the path altered it"},
	0xC0000418: {"STATUS_NTLM_BLOCKED", "the computer refuses NTLM logons"},
}

// hresult holds the COM, DCOM and WMI status codes (MS-ERREF 2.1,
// MS-WMI 2.2.11) that a WMI launch can return.
var hresult = map[uint32]status{
	0x00000001: {"WBEM_S_FALSE", "the query returned fewer objects than asked for"},
	0x80004002: {"E_NOINTERFACE", "the object does not provide the interface asked for"},
	0x80004005: {"E_FAIL", "the call failed for an unspecified reason"},
	0x80010108: {"RPC_E_DISCONNECTED", "the object's connection to its server is gone"},
	0x80040154: {"REGDB_E_CLASSNOTREG", "the COM class (here WMI) is not registered on the computer"},
	0x80070005: {"E_ACCESSDENIED", "the account may not activate or call this object"},
	0x8007000E: {"E_OUTOFMEMORY", "the computer ran out of memory for this call"},
	0x80080005: {"CO_E_SERVER_EXEC_FAILURE", "the WMI service could not be started for the call"},
	0x80041001: {"WBEM_E_FAILED", "WMI failed for an unspecified reason"},
	0x80041002: {"WBEM_E_NOT_FOUND", "the WMI object does not exist"},
	0x80041003: {"WBEM_E_ACCESS_DENIED", "the account lacks the WMI namespace permission it needs (Remote Enable)"},
	0x80041006: {"WBEM_E_OUT_OF_MEMORY", "the WMI service ran out of memory"},
	0x80041008: {"WBEM_E_INVALID_PARAMETER", "WMI rejected a parameter of the call"},
	0x8004100E: {"WBEM_E_INVALID_NAMESPACE", "the WMI namespace (root\\cimv2) does not exist"},
	0x80041010: {"WBEM_E_INVALID_CLASS", "the WMI class does not exist"},
	0x80041017: {"WBEM_E_INVALID_QUERY", "WMI rejected the query"},
	0x8004102E: {"WBEM_E_INVALID_METHOD", "the WMI class has no such method"},
}

// Win32 returns the symbolic name of a Win32 error code and a sentence
// saying what it means for a technician. For a code it does not know,
// name is "win32 error N" and meaning is empty.
func Win32(code uint32) (name, meaning string) {
	if s, ok := win32[code]; ok {
		return s.name, s.meaning
	}
	return fmt.Sprintf("win32 error %d", code), ""
}

// NTStatus returns the symbolic name of an NTSTATUS code and a sentence
// saying what it means for a technician. For a code it does not know,
// name is "NTSTATUS 0x..." and meaning is empty.
func NTStatus(code uint32) (name, meaning string) {
	if s, ok := ntstatus[code]; ok {
		return s.name, s.meaning
	}
	return fmt.Sprintf("NTSTATUS 0x%08X", code), ""
}

// HResult returns the symbolic name of an HRESULT and a sentence saying
// what it means for a technician. An HRESULT that wraps a Win32 error
// (0x8007xxxx) that this package does not list by itself is named after
// the Win32 error. For a code it does not know, name is "HRESULT 0x..."
// and meaning is empty.
func HResult(code uint32) (name, meaning string) {
	if s, ok := hresult[code]; ok {
		return s.name, s.meaning
	}
	if code&0xFFFF0000 == 0x80070000 {
		if s, ok := win32[code&0xFFFF]; ok {
			return "HRESULT_FROM_WIN32(" + s.name + ")", s.meaning
		}
	}
	return fmt.Sprintf("HRESULT 0x%08X", code), ""
}

// explain returns "NAME (number): meaning".
func explain(name, meaning, number string) string {
	s := name
	if number != "" {
		s += " (" + number + ")"
	}
	if meaning != "" {
		s += ": " + meaning
	}
	return s
}

// Win32Text returns the text a technician reads for a Win32 error, for
// example "ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory
// ...".
func Win32Text(code uint32) string {
	name, meaning := Win32(code)
	if meaning == "" {
		return name
	}
	return explain(name, meaning, fmt.Sprint(code))
}

// NTStatusText returns the text a technician reads for an NTSTATUS, for
// example "STATUS_LOGON_FAILURE (0xC000006D): the user name or password
// is wrong".
func NTStatusText(code uint32) string {
	name, meaning := NTStatus(code)
	if meaning == "" {
		return name
	}
	return explain(name, meaning, fmt.Sprintf("0x%08X", code))
}

// HResultText returns the text a technician reads for an HRESULT, for
// example "E_ACCESSDENIED (0x80070005): the account may not activate or
// call this object".
func HResultText(code uint32) string {
	name, meaning := HResult(code)
	if meaning == "" {
		return name
	}
	return explain(name, meaning, fmt.Sprintf("0x%08X", code))
}
