// helm-render renders a Helm chart's templates the way `helm template` does, for the tests of a
// machine without helm (tests/test_helm.py). It is Go's text/template with the sprig functions, the
// library helm itself uses, plus helm's own extras: include, tpl, required, fail, toYaml, fromYaml,
// toJson, fromJson, lookup (always empty: there is no cluster), .Files.Get, .Release, .Chart,
// .Capabilities (KubeVersion and APIVersions.Has) and .Template. Values are the chart's values.yaml
// deep-merged with each -f file in order (null deletes a key, as in helm); numbers become float64, as
// helm's YAML-through-JSON parsing makes them. It does not install anything or check the values
// schema (the tests do that with jsonschema).
//
// Build (GOPATH mode, Debian's packages, no module download):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o helm-render tests/helm_render/main.go
//
// Usage: helm-render [-name R] [-namespace N] [-api-versions a,b] [-f values.yaml]... CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yamlv2 "gopkg.in/yaml.v2"
	yamlv3 "gopkg.in/yaml.v3"
)

// Files is .Files: the chart's files outside templates/, read on demand.
type Files struct{ root string }

// Get returns a file's text, or "" when it does not exist (as helm does).
func (f Files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(data)
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

// Has is true for an API group/version ("monitoring.coreos.com/v1") or a group/version/kind.
func (a APIVersions) Has(version string) bool {
	for _, known := range a {
		if known == version {
			return true
		}
	}
	return false
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// jsonish turns YAML-decoded data into what helm's values are: JSON types (float64 numbers,
// map[string]interface{}).
func jsonish(v interface{}) (interface{}, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out interface{}
	err = json.Unmarshal(data, &out)
	return out, err
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yamlv3.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	converted, err := jsonish(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	values, ok := converted.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", path)
	}
	return values, nil
}

// merge copies src over dst: maps merge key by key, anything else replaces, null deletes.
func merge(dst, src map[string]interface{}) {
	for key, value := range src {
		if value == nil {
			delete(dst, key)
			continue
		}
		srcMap, srcIsMap := value.(map[string]interface{})
		dstMap, dstIsMap := dst[key].(map[string]interface{})
		if srcIsMap && dstIsMap {
			merge(dstMap, srcMap)
		} else {
			dst[key] = value
		}
	}
}

// toYAML is helm's: JSON first (so field order and types are JSON's), then YAML, without the last newline.
func toYAML(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var ordered yamlv2.MapSlice
	var generic interface{}
	var out []byte
	if err := yamlv2.Unmarshal(data, &ordered); err == nil && len(data) > 0 && data[0] == '{' {
		out, err = yamlv2.Marshal(ordered)
		if err != nil {
			return ""
		}
	} else {
		if err := yamlv2.Unmarshal(data, &generic); err != nil {
			return ""
		}
		out, err = yamlv2.Marshal(generic)
		if err != nil {
			return ""
		}
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(text string) map[string]interface{} {
	var raw interface{}
	if err := yamlv3.Unmarshal([]byte(text), &raw); err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	converted, err := jsonish(raw)
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	if m, ok := converted.(map[string]interface{}); ok {
		return m
	}
	return map[string]interface{}{}
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func main() {
	name := flag.String("name", "qcgate", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	apiVersions := flag.String("api-versions", "", "comma-separated extra API versions for .Capabilities.APIVersions")
	var valueFiles listFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later ones win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-name R] [-namespace N] [-f values.yaml]... CHART_DIR")
		os.Exit(2)
	}
	if err := render(flag.Arg(0), *name, *namespace, *kubeVersion, *apiVersions, valueFiles); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func render(chartDir, name, namespace, kubeVersion, apiVersions string, valueFiles []string) error {
	chartMeta, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chart := map[string]interface{}{}
	for key, value := range chartMeta { // helm exposes Chart.yaml's fields capitalised: .Chart.AppVersion
		chart[strings.ToUpper(key[:1])+key[1:]] = value
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, path := range valueFiles {
		override, err := readYAML(path)
		if err != nil {
			return err
		}
		merge(values, override)
	}
	versions := APIVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2"}
	for _, version := range strings.Split(apiVersions, ",") {
		if version != "" {
			versions = append(versions, version)
		}
	}
	major, minor := "1", "30"
	if parts := strings.SplitN(strings.TrimPrefix(kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	chartName, _ := chart["Name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": kubeVersion, "GitVersion": kubeVersion, "Major": major, "Minor": minor,
			},
			"APIVersions": versions,
		},
		"Files": Files{root: chartDir},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // helm removes these two: a chart must not read the renderer's environment
	delete(funcs, "expandenv")
	includeDepth := map[string]int{}
	funcs["include"] = func(templateName string, data interface{}) (string, error) {
		includeDepth[templateName]++
		defer func() { includeDepth[templateName]-- }()
		if includeDepth[templateName] > 1000 {
			return "", fmt.Errorf("include %q: recursion too deep", templateName)
		}
		var out bytes.Buffer
		if err := root.ExecuteTemplate(&out, templateName, data); err != nil {
			return "", err
		}
		return out.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		if err := parsed.Execute(&out, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(out.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, fmt.Errorf("%s", message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return value, nil
	}
	funcs["fail"] = func(message string) (string, error) { return "", fmt.Errorf("%s", message) }
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	var names []string
	err = filepath.Walk(templatesDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		templateName := chartName + "/" + filepath.ToSlash(rel)
		if _, err := root.New(templateName).Parse(string(text)); err != nil {
			return err
		}
		names = append(names, templateName)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, templateName := range names {
		base := filepath.Base(templateName)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": templateName, "BasePath": chartName + "/templates"}
		var doc bytes.Buffer
		if err := root.ExecuteTemplate(&doc, templateName, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(doc.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", templateName, strings.TrimRight(text, "\n"))
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
