// Package winemu emulates the Windows RPC endpoints that no open-source
// server provides: the endpoint mapper, Service Control Manager service
// creation and start, and DCOM/WMI Win32_Process.Create.
//
// It is a test peer, built on go-msrpc's generated server stubs and served
// over TCP with NTLM. It really starts the deployed applet inside a lab
// target. It is not a Windows implementation and must not be exposed
// outside a lab.
package winemu
