package deploy_test

import (
	"context"
	"fmt"
	"os"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
)

// Copy the applet with a persistent journal, and undo everything later,
// even from another process that opens the same journal file.
func ExampleCopy() {
	ctx := context.Background()
	creds, _ := adauth.Parse(`.\Administrator`, os.Getenv("PASSWORD"))
	g, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, "192.0.2.10", creds)
	if err != nil {
		fmt.Println(err) // an *adauth.AuthError with a diag.Diagnosis
		return
	}
	defer g.Close()

	applet, err := deploy.AppletFromFile("acme-applet.exe", "4.2", "dist/acme-applet.exe")
	if err != nil {
		fmt.Println(err)
		return
	}
	j, err := deploy.OpenJournal("/var/lib/acme/journal-192.0.2.10.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := deploy.Copy(ctx, g, applet, deploy.CopyOptions{
		Dir:     `Acme`, // optional: the parent of the new per-copy folder, under ADMIN$
		Journal: j,
		Progress: func(done, total int64) {
			fmt.Printf("\r%d/%d bytes", done, total)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("launch", res.LocalPath) // C:\Windows\Acme\lanconnect-1a2b3c4d\acme-applet.exe

	// Later: remove what was created, newest first.
	rep := j.Undo(ctx, deploy.FileUndoers(g))
	fmt.Println("undone:", len(rep.Undone), "left:", len(rep.Failed)+len(rep.Skipped))
}
