package winemu

// wmi_class.go builds the CIM classes the emulator serves (MS-WMIO
// encodings through go-msrpc's wmio): Win32_Process with its Create and
// Terminate methods, and Win32_OperatingSystem. The property and method
// layouts follow the classes of a Windows Server root\cimv2 namespace,
// reduced to the properties the emulator can fill in.

import (
	"fmt"
	"strings"

	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemclassobject/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"
)

// propDef declares one class property.
type propDef struct {
	name    string
	typ     wmio.CIMType
	cimtype string // the CIMTYPE qualifier ("string", "uint32", "object:X")
	key     bool
}

// newClass builds a class part with NULL defaults, value-table offsets
// laid out in declaration order and a CIMTYPE qualifier per property (as
// Windows encodes them). It is built anew for each use: go-msrpc's
// encoder writes into the property records.
func newClass(name string, derivation []string, props []propDef) wmio.Class {
	c := wmio.Class{Name: name, Derivation: derivation}
	off := uint32(0)
	for i, p := range props {
		qs := []*wmio.Qualifier{{Name: "CIMTYPE", Flavor: wmio.OriginPropagated, Value: wmio.Value{Type: wmio.String, Value: p.cimtype}}}
		if p.key {
			qs = append(qs, &wmio.Qualifier{Name: "key", Flavor: wmio.PropagateToInstance | wmio.PropagateToDerivedClass | wmio.NotOverridable, Value: wmio.Value{Type: wmio.Bool, Value: true}})
		}
		prop := &wmio.Property{
			Name:       p.name,
			Order:      uint16(i),
			Offset:     off,
			Qualifiers: qs,
			Nullable:   true,
			Value:      wmio.Value{Type: p.typ},
		}
		off += uint32(prop.Value.EncodeValueSize())
		c.Properties = append(c.Properties, prop)
	}
	return c
}

func paramsClass(props []propDef) wmio.Class {
	return newClass("__PARAMETERS", nil, props)
}

// processCreateIn and the other signatures are Win32_Process's method
// parameter classes.
func processCreateIn() wmio.Class {
	return paramsClass([]propDef{
		{name: "CommandLine", typ: wmio.String, cimtype: "string"},
		{name: "CurrentDirectory", typ: wmio.String, cimtype: "string"},
		{name: "ProcessStartupInformation", typ: wmio.CIMObject, cimtype: "object:Win32_ProcessStartup"},
	})
}

func processCreateOut() wmio.Class {
	return paramsClass([]propDef{
		{name: "ProcessId", typ: wmio.Uint32, cimtype: "uint32"},
		{name: "ReturnValue", typ: wmio.Uint32, cimtype: "uint32"},
	})
}

func processTerminateIn() wmio.Class {
	return paramsClass([]propDef{{name: "Reason", typ: wmio.Uint32, cimtype: "uint32"}})
}

func processTerminateOut() wmio.Class {
	return paramsClass([]propDef{{name: "ReturnValue", typ: wmio.Uint32, cimtype: "uint32"}})
}

var processProps = []propDef{
	{name: "Caption", typ: wmio.String, cimtype: "string"},
	{name: "CommandLine", typ: wmio.String, cimtype: "string"},
	{name: "CreationClassName", typ: wmio.String, cimtype: "string"},
	{name: "CreationDate", typ: wmio.DateTime, cimtype: "datetime"},
	{name: "CSCreationClassName", typ: wmio.String, cimtype: "string"},
	{name: "CSName", typ: wmio.String, cimtype: "string"},
	{name: "Description", typ: wmio.String, cimtype: "string"},
	{name: "ExecutablePath", typ: wmio.String, cimtype: "string"},
	{name: "Handle", typ: wmio.String, cimtype: "string", key: true},
	{name: "Name", typ: wmio.String, cimtype: "string"},
	{name: "OSCreationClassName", typ: wmio.String, cimtype: "string"},
	{name: "OSName", typ: wmio.String, cimtype: "string"},
	{name: "ParentProcessId", typ: wmio.Uint32, cimtype: "uint32"},
	{name: "ProcessId", typ: wmio.Uint32, cimtype: "uint32"},
	{name: "SessionId", typ: wmio.Uint32, cimtype: "uint32"},
	{name: "ThreadCount", typ: wmio.Uint32, cimtype: "uint32"},
	{name: "WindowsVersion", typ: wmio.String, cimtype: "string"},
}

var osProps = []propDef{
	{name: "BuildNumber", typ: wmio.String, cimtype: "string"},
	{name: "Caption", typ: wmio.String, cimtype: "string"},
	{name: "CreationClassName", typ: wmio.String, cimtype: "string"},
	{name: "CSCreationClassName", typ: wmio.String, cimtype: "string"},
	{name: "CSName", typ: wmio.String, cimtype: "string"},
	{name: "Manufacturer", typ: wmio.String, cimtype: "string"},
	{name: "Name", typ: wmio.String, cimtype: "string", key: true},
	{name: "OSArchitecture", typ: wmio.String, cimtype: "string"},
	{name: "OSType", typ: wmio.Uint16, cimtype: "uint16"},
	{name: "SystemDirectory", typ: wmio.String, cimtype: "string"},
	{name: "Version", typ: wmio.String, cimtype: "string"},
	{name: "WindowsDirectory", typ: wmio.String, cimtype: "string"},
}

func processClass() wmio.Class {
	return newClass("Win32_Process", []string{"CIM_Process", "CIM_LogicalElement", "CIM_ManagedSystemElement"}, processProps)
}

func osClass() wmio.Class {
	return newClass("Win32_OperatingSystem", []string{"CIM_OperatingSystem", "CIM_LogicalElement", "CIM_ManagedSystemElement"}, osProps)
}

// method builds a method record with its parameter signatures.
func method(name string, in, out wmio.Class) *wmio.Method {
	return &wmio.Method{
		Name:            name,
		Qualifiers:      []*wmio.Qualifier{{Name: "Implemented", Flavor: wmio.PropagateToDerivedClass, Value: wmio.Value{Type: wmio.Bool, Value: true}}},
		InputSignature:  wmio.Object{Class: &wmio.ObjectClass{CurrentClass: in}},
		OutputSignature: wmio.Object{Class: &wmio.ObjectClass{CurrentClass: out}},
	}
}

// classObject returns the full class definition of a served class, with
// its decoration, as GetObject returns it.
func (w *WMI) classObject(name string) (*wmio.Object, bool) {
	var obj *wmio.Object
	switch strings.ToLower(name) {
	case "win32_process":
		obj = &wmio.Object{Class: &wmio.ObjectClass{
			ParentClass:  newClass("CIM_Process", []string{"CIM_LogicalElement", "CIM_ManagedSystemElement"}, nil),
			CurrentClass: processClass(),
			CurrentClassMethods: wmio.Methods{Methods: []*wmio.Method{
				method("Create", processCreateIn(), processCreateOut()),
				method("Terminate", processTerminateIn(), processTerminateOut()),
			}},
		}}
	case "win32_operatingsystem":
		obj = &wmio.Object{Class: &wmio.ObjectClass{
			ParentClass:  newClass("CIM_OperatingSystem", []string{"CIM_LogicalElement", "CIM_ManagedSystemElement"}, nil),
			CurrentClass: osClass(),
		}}
	default:
		return nil, false
	}
	obj.Decoration = w.decoration()
	return obj, true
}

func (w *WMI) decoration() *wmio.Decoration {
	return &wmio.Decoration{ServerName: w.srv.netbiosName(), Namespace: `ROOT\cimv2`}
}

// instance builds an instance of cls with the given values; properties
// without a value are NULL.
func (w *WMI) instance(cls wmio.Class, values wmio.Values) (*wmio.Object, error) {
	for k := range values {
		found := false
		for _, p := range cls.Properties {
			if p.Name == k {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("winemu: class %s has no property %s", cls.Name, k)
		}
	}
	inst := &wmio.Instance{CurrentClass: cls, ClassName: cls.Name}
	for _, p := range cls.Properties {
		v, ok := values[p.Name]
		if !ok || v == nil {
			inst.Properties = append(inst.Properties, &wmio.Property{Name: p.Name, Nullable: true, Value: wmio.Value{Type: p.Value.Type}})
			continue
		}
		inst.Properties = append(inst.Properties, &wmio.Property{Name: p.Name, Value: wmio.Value{Type: p.Value.Type, Value: v}})
	}
	return &wmio.Object{Decoration: w.decoration(), Instance: inst}, nil
}

// marshalObject encodes a CIM object as the IWbemClassObject interface
// pointer that carries it by value (OBJREF_CUSTOM, MS-WMI 2.2.4.1).
func marshalObject(obj *wmio.Object) (*wmi.ClassObject, error) {
	b, err := wmio.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("winemu: encode CIM object: %w", err)
	}
	ip, err := customObjref(iwbemclassobject.ClassObjectIID, wmi.ClassObjectUnmarshalClassID, b)
	if err != nil {
		return nil, err
	}
	return (*wmi.ClassObject)(ip), nil
}

// unmarshalObject decodes an IWbemClassObject interface pointer sent by
// value.
func unmarshalObject(co *wmi.ClassObject) (*wmio.Object, error) {
	if co == nil || len(co.Data) == 0 {
		return nil, fmt.Errorf("winemu: no object")
	}
	ref := (*dcom.InterfacePointer)(co).GetObjectReference()
	c, ok := ref.ObjectReference.GetValue().(*dcom.ObjectReferenceCustom)
	if !ok || len(c.ObjectData) < 4 {
		return nil, fmt.Errorf("winemu: object is not marshaled by value")
	}
	return wmio.Unmarshal(c.ObjectData)
}
