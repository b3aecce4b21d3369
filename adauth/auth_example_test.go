package adauth_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/adauth"
)

// A console authenticates with its current credentials and, when they are
// refused for a reason other credentials can fix, asks the technician.
func ExampleCredentialSource() {
	ctx := context.Background()
	current, _ := adauth.Parse(`CORP\helpdesk`, "from the console's vault")
	src := adauth.CredentialSource{
		Current: current,
		Prompt: func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			// Show req.Diagnosis.Summary and req.Diagnosis.Fix in the dialog.
			fmt.Printf("%s: %s\n", req.Addr, req.Diagnosis.Summary)
			return adauth.Credentials{}, adauth.ErrPromptCanceled // the technician clicked Cancel
		},
	}
	g, err := src.Authenticate(ctx, &adauth.SMBAuthenticator{}, "192.0.2.10")
	var ae *adauth.AuthError
	switch {
	case errors.As(err, &ae):
		fmt.Printf("failed at %s (%s): %s\n", ae.Step, ae.Diagnosis.Code, ae.Diagnosis.Fix)
	case err == nil:
		defer g.Close()
		fmt.Println("administrator on", g.Facts.Server.NetBIOSName, "over SMB", g.Facts.Dialect)
	}
}
