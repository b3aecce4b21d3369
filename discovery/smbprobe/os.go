package smbprobe

import "fmt"

// Windows builds that NTLM's VERSION reports, and the products that carry
// them. A client and a server release share a build (22H2's 19045 aside),
// and NTLM does not say which one a host is, so both are named.
var builds = map[uint16]string{
	2600:  "Windows XP",
	3790:  "Windows Server 2003",
	6001:  "Windows Vista SP1 / Server 2008",
	6002:  "Windows Vista SP2 / Server 2008 SP2",
	7600:  "Windows 7 / Server 2008 R2",
	7601:  "Windows 7 SP1 / Server 2008 R2 SP1",
	9200:  "Windows 8 / Server 2012",
	9600:  "Windows 8.1 / Server 2012 R2",
	10240: "Windows 10 1507",
	10586: "Windows 10 1511",
	14393: "Windows 10 1607 / Server 2016",
	15063: "Windows 10 1703",
	16299: "Windows 10 1709",
	17134: "Windows 10 1803",
	17763: "Windows 10 1809 / Server 2019",
	18362: "Windows 10 1903",
	18363: "Windows 10 1909",
	19041: "Windows 10 2004",
	19042: "Windows 10 20H2",
	19043: "Windows 10 21H1",
	19044: "Windows 10 21H2",
	19045: "Windows 10 22H2",
	20348: "Windows Server 2022",
	22000: "Windows 11 21H2",
	22621: "Windows 11 22H2",
	22631: "Windows 11 23H2",
	25398: "Windows Server 23H2",
	26100: "Windows 11 24H2 / Server 2025",
	26200: "Windows 11 25H2",
}

// ProductName maps an OS version from an NTLM challenge to a product name
// ("Windows 11 23H2" for 10.0.22631). It returns "" for a build it does not
// know, rather than guessing.
func ProductName(major, minor uint8, build uint16) string {
	if major < 5 {
		return ""
	}
	return builds[build]
}

// versionString is the OS version in the form hosts carry it: "10.0.22631".
func versionString(major, minor uint8, build uint16) string {
	return fmt.Sprintf("%d.%d.%d", major, minor, build)
}
