// Package lapstest serves MS-GKDI GetKey for the lab's LAPS accounts, as a
// domain controller would, for tests that decrypt Windows LAPS passwords:
// the lab DC's Samba serves no GKDI.
//
// It is for tests only: the root key is synthetic and lives in memory.
package lapstest
