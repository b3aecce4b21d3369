package diag_test

import (
	"encoding/json"
	"fmt"

	"github.com/lanconnect/lanconnect/diag"
)

func ExampleDiagnosis() {
	d := diag.Diagnosis{
		Code:    diag.WMIRPCRefused,
		Summary: "Port 135 on 10.0.0.5 refused the connection: the RPC endpoint mapper is not reachable.",
		Fix:     "Allow TCP 135 and the dynamic RPC range in the computer's firewall.",
	}
	fmt.Println(d.Code)
	fmt.Println(d)
	b, _ := json.Marshal(diag.Diagnosis{Code: diag.Canceled, Summary: "The session was canceled during launch."})
	fmt.Println(string(b))
	// Output:
	// wmi-rpc-refused
	// Port 135 on 10.0.0.5 refused the connection: the RPC endpoint mapper is not reachable. Fix: Allow TCP 135 and the dynamic RPC range in the computer's firewall.
	// {"code":"canceled","summary":"The session was canceled during launch."}
}

func ExampleWin32Text() {
	fmt.Println(diag.Win32Text(8))
	fmt.Println(diag.Win32Text(1060))
	fmt.Println(diag.NTStatusText(0xC0000234))
	// Output:
	// ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory (or of a server resource such as RPC buffers) for this call
	// ERROR_SERVICE_DOES_NOT_EXIST (1060): no service of that name is installed
	// STATUS_ACCOUNT_LOCKED_OUT (0xC0000234): the account is locked out after too many failed logons
}
