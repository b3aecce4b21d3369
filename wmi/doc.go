// Package wmi launches the applet with WMI's Win32_Process.Create over DCOM
// (TCP 135, then a dynamic port), and reads the OS facts of a target through
// a Win32_OperatingSystem query.
//
// It implements deploy.Launcher as the fallback for targets where the
// Service Control Manager path is unavailable. It is slower than that path,
// needs no service, and leaves no service behind. It does not copy files.
package wmi
