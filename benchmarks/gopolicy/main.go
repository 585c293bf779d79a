// gopolicy is the Trino benchmark's policy (benchmarks/opa/trino.rego, over the same data
// document) written by hand in Go and served by Go's HTTP server: a map lookup per call, about
// the least a correct server of Trino's OPA contract can spend on one. Behind Trino's OPA access
// control it shows what the plugin itself costs a query (its calls, its HTTP client, the thread
// hand-offs) whatever answers it, with the same answers, so that queries see the same tables.
//
//	gopolicy -addr 127.0.0.1:8181 -data opa-data.json -procs 1
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
)

type set map[string]bool

// data is the `bench` document of opa-data.json (trino_world.opa_data).
type data struct {
	Admins       []string       `json:"admins"`
	Registered   set            `json:"registered"`
	GroupSchemas map[string]set `json:"group_schemas"`
	UserTables   map[string]set `json:"user_tables"`
}

type table struct {
	CatalogName string   `json:"catalogName"`
	SchemaName  string   `json:"schemaName"`
	TableName   string   `json:"tableName"`
	Columns     []string `json:"columns"`
}

type resource struct {
	Table *table `json:"table"`
	User  *struct {
		User string `json:"user"`
	} `json:"user"`
}

type request struct {
	Input struct {
		Context struct {
			Identity struct {
				User   string   `json:"user"`
				Groups []string `json:"groups"`
			} `json:"identity"`
		} `json:"context"`
		Action struct {
			Operation       string     `json:"operation"`
			Resource        resource   `json:"resource"`
			FilterResources []resource `json:"filterResources"`
		} `json:"action"`
	} `json:"input"`
}

var (
	identityOps   = set{"ExecuteQuery": true, "SetSystemSessionProperty": true, "SetCatalogSessionProperty": true}
	selfOps       = set{"ImpersonateUser": true, "ViewQueryOwnedBy": true, "KillQueryOwnedBy": true, "FilterViewQueryOwnedBy": true}
	visibilityOps = set{"AccessCatalog": true, "ShowSchemas": true, "FilterCatalogs": true, "ShowTables": true,
		"ShowFunctions": true, "ShowCreateSchema": true, "FilterSchemas": true}
	tableReadOps = set{"SelectFromColumns": true, "ShowColumns": true, "ShowCreateTable": true, "FilterTables": true,
		"FilterColumns": true, "CreateViewWithSelectFromColumns": true}
	functionReadOps = set{"ExecuteFunction": true, "ShowCreateFunction": true, "FilterFunctions": true,
		"CreateViewWithExecuteFunction": true}
)

type policy struct {
	data   data
	admins set
}

func (p *policy) permitted(r *request, operation string, res resource) bool {
	identity := r.Input.Context.Identity
	switch {
	case p.admins[identity.User], identityOps[operation], visibilityOps[operation], functionReadOps[operation]:
		return true
	case selfOps[operation]:
		return res.User != nil && res.User.User == identity.User
	case tableReadOps[operation]:
		return res.Table != nil && p.readable(identity.User, identity.Groups, res.Table)
	}
	return false
}

func (p *policy) readable(user string, groups []string, t *table) bool {
	catalog, schema := strings.ToLower(t.CatalogName), strings.ToLower(t.SchemaName)
	if schema == "information_schema" || (catalog == "system" && (schema == "jdbc" || schema == "metadata")) {
		return true
	}
	key := catalog + "." + schema + "." + strings.ToLower(t.TableName)
	if !p.data.Registered[key] || p.data.UserTables[user][key] {
		return true
	}
	for _, group := range groups {
		if p.data.GroupSchemas[group][catalog+"."+schema] {
			return true
		}
	}
	return false
}

func reply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write([]byte(body))
}

func decode(w http.ResponseWriter, r *http.Request) (*request, bool) {
	var in request
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return &in, true
}

func (p *policy) allow(w http.ResponseWriter, r *http.Request) {
	if in, ok := decode(w, r); ok {
		reply(w, `{"result":`+strconv.FormatBool(p.permitted(in, in.Input.Action.Operation, in.Input.Action.Resource))+"}")
	}
}

// batch answers the indices of the allowed items; FilterColumns (one table per request) the
// indices of that table's columns when the table is readable.
func (p *policy) batch(w http.ResponseWriter, r *http.Request) {
	in, ok := decode(w, r)
	if !ok {
		return
	}
	action := in.Input.Action
	var allowed []int
	for i, res := range action.FilterResources {
		if !p.permitted(in, action.Operation, res) {
			continue
		}
		if action.Operation != "FilterColumns" {
			allowed = append(allowed, i)
		} else if res.Table != nil {
			for c := range res.Table.Columns {
				allowed = append(allowed, c)
			}
		}
	}
	var b strings.Builder
	b.WriteString(`{"result":[`)
	for i, index := range allowed {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(index))
	}
	b.WriteString("]}")
	reply(w, b.String())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8181", "listen address")
	path := flag.String("data", "opa-data.json", "the data document (trino_world.opa_data)")
	// Go's idle threads spin looking for work before they sleep; where Trino keeps every core
	// busy that spinning is CPU taken from Trino, and one thread is enough for a lookup per call.
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: Go's default, one per core)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		log.Fatal(err)
	}
	var document struct {
		Bench data `json:"bench"`
	}
	if err := json.Unmarshal(raw, &document); err != nil {
		log.Fatalf("%s: %v", *path, err)
	}
	p := &policy{data: document.Bench, admins: set{}}
	for _, admin := range p.data.Admins {
		p.admins[admin] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/data/trino/allow", p.allow)
	mux.HandleFunc("POST /v1/data/trino/batch", p.batch)
	none := func(w http.ResponseWriter, r *http.Request) {
		if _, ok := decode(w, r); ok { // no row filters, no masks: what OPA and the PDP answer
			reply(w, `{"result":[]}`)
		}
	}
	mux.HandleFunc("POST /v1/data/trino/rowFilters", none)
	mux.HandleFunc("POST /v1/data/trino/batchColumnMasks", none)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { reply(w, "{}") })
	log.Fatal(http.ListenAndServe(*addr, mux))
}
