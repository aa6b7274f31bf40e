// ollama_render renders chats through a Modelfile's TEMPLATE the way Ollama does, so that the
// templates temper writes can be checked against the Hugging Face Jinja renderings.
//
// Usage: ollama_render -modelfile FILE [-today 2025-01-01] < chats.json > prompts.json
// chats.json is a JSON array of chats, each an array of {"role", "content"} messages; the output
// is a JSON array with one rendered prompt per chat.
//
// It follows ollama/ollama v0.33.0-rc2 (fb30760), standard library only (Go >= 1.19):
//   - parser/parser.go ParseFile: the Modelfile state machine, so quoting is read as Ollama reads it;
//   - template/template.go Parse, Vars, Execute, collate, deleteNode: the data the template sees.
//     With .Messages in the template: System = every system message joined by "\n\n", Messages =
//     the collated messages (system messages included, consecutive same-role ones merged),
//     Response = "". Without it (legacy): one execution per user/assistant exchange with
//     .System/.Prompt/.Response, the last one cut at {{ .Response }}.
//   - the template functions json, currentDate, yesterdayDate (toTypeScriptType needs Ollama's
//     api types and is left out). The clock is pinned by -today, as the Jinja renderings pin
//     strftime_now.
//
// The conversion to api.Message and the chat handler (server/prompt.go chatPrompt, no
// truncation, no images) add nothing for text messages. BOS is not part of the rendering:
// llama-server adds it when tokenizing, as the GGUF's add_bos_token says.
//
// Checked once against Ollama's own expectations: with each of the 20 bundled template/*.gotmpl
// as TEMPLATE, it reproduces all 60 renderings in template/testdata (.Messages and legacy ones).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// ---- Modelfile (parser/parser.go ParseFile) ----

type state int

const (
	stateNil state = iota
	stateName
	stateValue
	stateParameter
	stateMessage
	stateComment
)

func isSpace(r rune) bool   { return r == ' ' || r == '\t' }
func isNewline(r rune) bool { return r == '\r' || r == '\n' }
func isAlpha(r rune) bool   { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isNumber(r rune) bool  { return r >= '0' && r <= '9' }

var errInvalidCommand = errors.New("command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"")

func isValidCommand(cmd string) bool {
	switch strings.ToLower(cmd) {
	case "from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter", "message", "requires":
		return true
	}
	return false
}

func parseRuneForState(r rune, cs state) (state, rune, error) {
	switch cs {
	case stateNil:
		switch {
		case r == '#':
			return stateComment, 0, nil
		case isSpace(r), isNewline(r):
			return stateNil, 0, nil
		default:
			return stateName, r, nil
		}
	case stateName:
		switch {
		case isAlpha(r):
			return stateName, r, nil
		case isSpace(r):
			return stateValue, 0, nil
		default:
			return stateNil, 0, errInvalidCommand
		}
	case stateValue:
		if isNewline(r) || isSpace(r) {
			return stateNil, r, nil
		}
		return stateValue, r, nil
	case stateParameter:
		switch {
		case isAlpha(r), isNumber(r), r == '_':
			return stateParameter, r, nil
		case isSpace(r):
			return stateValue, 0, nil
		default:
			return stateNil, 0, io.ErrUnexpectedEOF
		}
	case stateMessage:
		switch {
		case isAlpha(r):
			return stateMessage, r, nil
		case isSpace(r):
			return stateValue, 0, nil
		default:
			return stateNil, 0, io.ErrUnexpectedEOF
		}
	case stateComment:
		if isNewline(r) {
			return stateNil, 0, nil
		}
		return stateComment, 0, nil
	}
	return stateNil, 0, errors.New("")
}

func unquote(s string) (string, bool) {
	if len(s) >= 3 && s[:3] == `"""` {
		if len(s) >= 6 && s[len(s)-3:] == `"""` {
			return s[3 : len(s)-3], true
		}
		return "", false
	}
	if len(s) >= 1 && s[0] == '"' {
		if len(s) >= 2 && s[len(s)-1] == '"' {
			return s[1 : len(s)-1], true
		}
		return "", false
	}
	return s, true
}

type command struct{ Name, Args string }

// parseModelfile returns the commands in order (PARAMETER commands named by their parameter).
func parseModelfile(text string) ([]command, error) {
	var cmds []command
	var cmd command
	var curr state
	var b strings.Builder
	var role string
	line := 1
	br := bufio.NewReader(strings.NewReader(text))
	for {
		r, _, err := br.ReadRune()
		if err == io.EOF {
			break
		}
		if isNewline(r) {
			line++
		}
		next, r, err := parseRuneForState(r, curr)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %s", line, err, b.String())
		}
		if next != curr {
			switch curr {
			case stateName:
				if !isValidCommand(b.String()) {
					return nil, fmt.Errorf("line %d: %v", line, errInvalidCommand)
				}
				switch s := strings.ToLower(b.String()); s {
				case "from":
					cmd.Name = "model"
				case "parameter":
					next = stateParameter
				case "message":
					next = stateMessage
					cmd.Name = s
				default:
					cmd.Name = s
				}
			case stateParameter:
				cmd.Name = b.String()
			case stateMessage:
				role = b.String()
			case stateValue:
				s, ok := unquote(strings.TrimSpace(b.String()))
				if !ok || isSpace(r) {
					b.WriteRune(r) // an unterminated quote (or a space): the value goes on
					continue
				}
				if role != "" {
					s, role = role+": "+s, ""
				}
				cmd.Args = s
				cmds = append(cmds, cmd)
			}
			b.Reset()
			curr = next
		}
		if strconv.IsPrint(r) {
			b.WriteRune(r)
		}
	}
	switch curr {
	case stateComment, stateNil:
	case stateValue:
		s, ok := unquote(strings.TrimSpace(b.String()))
		if !ok {
			return nil, fmt.Errorf("unexpected EOF: %s", b.String())
		}
		if role != "" {
			s = role + ": " + s
		}
		cmd.Args = s
		cmds = append(cmds, cmd)
	default:
		return nil, errors.New("unexpected EOF")
	}
	return cmds, nil
}

// ---- template (template/template.go) ----

var today = "2025-01-01"

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate": func(args ...string) string { return today }, // Ollama: time.Now().Format("2006-01-02")
	"yesterdayDate": func(args ...string) string {
		t, _ := time.Parse("2006-01-02", today)
		return t.AddDate(0, 0, -1).Format("2006-01-02")
	},
}

// identifiers lists the field and variable names a node uses (Ollama's Identifiers).
func identifiers(n parse.Node) []string {
	switch n := n.(type) {
	case *parse.ListNode:
		var names []string
		for _, c := range n.Nodes {
			names = append(names, identifiers(c)...)
		}
		return names
	case *parse.TemplateNode:
		return identifiers(n.Pipe)
	case *parse.ActionNode:
		return identifiers(n.Pipe)
	case *parse.IfNode:
		return identifiers(&n.BranchNode)
	case *parse.RangeNode:
		return identifiers(&n.BranchNode)
	case *parse.WithNode:
		return identifiers(&n.BranchNode)
	case *parse.BranchNode:
		names := identifiers(n.Pipe)
		for _, l := range []*parse.ListNode{n.List, n.ElseList} {
			if l != nil {
				names = append(names, identifiers(l)...)
			}
		}
		return names
	case *parse.PipeNode:
		var names []string
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				names = append(names, identifiers(a)...)
			}
		}
		return names
	case *parse.FieldNode:
		return n.Ident
	case *parse.VariableNode:
		return n.Ident
	}
	return nil
}

func usesVar(t *template.Template, name string) bool {
	for _, tt := range t.Templates() {
		for _, n := range tt.Root.Nodes {
			for _, v := range identifiers(n) {
				if strings.ToLower(v) == name {
					return true
				}
			}
		}
	}
	return false
}

// parseTemplate is Ollama's Parse: templates that use neither .Messages nor .Response get
// {{ .Response }} appended.
func parseTemplate(s string) (*template.Template, error) {
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(s)
	if err != nil {
		return nil, err
	}
	if !usesVar(t, "messages") && !usesVar(t, "response") {
		resp := &parse.ActionNode{NodeType: parse.NodeAction, Pipe: &parse.PipeNode{NodeType: parse.NodePipe,
			Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand,
				Args: []parse.Node{&parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}}}}}}
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, resp)
	}
	return t, nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// templateMessage has the fields Ollama's templates see for each message.
type templateMessage struct {
	Role, Content, Thinking, ToolName, ToolCallID string
	Images                                        []any
	ToolCalls                                     []any
}

// collate merges consecutive messages of one role (except tool) and joins the system messages.
func collate(msgs []message) (string, []*templateMessage) {
	var system []string
	var out []*templateMessage
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &templateMessage{Role: m.Role, Content: m.Content})
		}
	}
	return strings.Join(system, "\n\n"), out
}

// deleteNode removes the nodes fn selects (Ollama uses it to cut the template at .Response).
func deleteNode(n parse.Node, fn func(parse.Node) bool) parse.Node {
	if fn(n) {
		return nil
	}
	switch t := n.(type) {
	case *parse.ListNode:
		var nodes []parse.Node
		for _, c := range t.Nodes {
			if c := deleteNode(c, fn); c != nil {
				nodes = append(nodes, c)
			}
		}
		t.Nodes = nodes
		return t
	case *parse.IfNode:
		t.BranchNode = *deleteNode(&t.BranchNode, fn).(*parse.BranchNode)
	case *parse.WithNode:
		t.BranchNode = *deleteNode(&t.BranchNode, fn).(*parse.BranchNode)
	case *parse.RangeNode:
		t.BranchNode = *deleteNode(&t.BranchNode, fn).(*parse.BranchNode)
	case *parse.BranchNode:
		t.List = deleteNode(t.List, fn).(*parse.ListNode)
		if t.ElseList != nil {
			t.ElseList = deleteNode(t.ElseList, fn).(*parse.ListNode)
		}
	case *parse.ActionNode:
		p := deleteNode(t.Pipe, fn)
		if p == nil {
			return nil
		}
		t.Pipe = p.(*parse.PipeNode)
	case *parse.PipeNode:
		var cmds []*parse.CommandNode
		for _, c := range t.Cmds {
			var args []parse.Node
			for _, a := range c.Args {
				if a := deleteNode(a, fn); a != nil {
					args = append(args, a)
				}
			}
			if len(args) == 0 {
				return nil
			}
			c.Args = args
			cmds = append(cmds, c)
		}
		if len(cmds) == 0 {
			return nil
		}
		t.Cmds = cmds
	}
	return n
}

// execute is Ollama's Template.Execute for a chat (no tools, no suffix, thinking not set).
func execute(t *template.Template, msgs []message) (string, error) {
	system, collated := collate(msgs)
	var b bytes.Buffer
	if usesVar(t, "messages") {
		err := t.Execute(&b, map[string]any{"System": system, "Messages": collated, "Tools": nil,
			"Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false})
		return b.String(), err
	}
	vars := func(system, prompt, response string) map[string]any {
		return map[string]any{"System": system, "Prompt": prompt, "Response": response,
			"Think": false, "ThinkLevel": "", "IsThinkSet": false}
	}
	system = ""
	var prompt, response string
	flush := func() error {
		err := t.Execute(&b, vars(system, prompt, response))
		system, prompt, response = "", "", ""
		return err
	}
	for _, m := range collated {
		var err error
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				err = flush()
			}
			system = m.Content
		case "user":
			if response != "" {
				err = flush()
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
		if err != nil {
			return "", err
		}
	}
	cut := false
	root := deleteNode(t.Root.Copy(), func(n parse.Node) bool {
		if f, ok := n.(*parse.FieldNode); ok {
			for _, id := range f.Ident {
				if id == "Response" {
					cut = true
					return false
				}
			}
		}
		return cut
	})
	last := template.Must(template.New("").AddParseTree("", &parse.Tree{Root: root.(*parse.ListNode)}))
	err := last.Execute(&b, vars(system, prompt, response))
	return b.String(), err
}

func main() {
	modelfile := flag.String("modelfile", "", "the Modelfile whose TEMPLATE renders the chats")
	flag.StringVar(&today, "today", today, "what currentDate returns (YYYY-MM-DD)")
	flag.Parse()
	if err := run(*modelfile); err != nil {
		fmt.Fprintln(os.Stderr, "ollama_render:", err)
		os.Exit(1)
	}
}

func run(modelfile string) error {
	text, err := os.ReadFile(modelfile)
	if err != nil {
		return err
	}
	cmds, err := parseModelfile(string(text))
	if err != nil {
		return fmt.Errorf("%s: %v", modelfile, err)
	}
	tmpl := ""
	for _, c := range cmds {
		if c.Name == "template" {
			tmpl = c.Args
		}
	}
	if tmpl == "" {
		return fmt.Errorf("%s: no TEMPLATE (Ollama would use its detected template or the GGUF's)", modelfile)
	}
	t, err := parseTemplate(tmpl)
	if err != nil {
		return fmt.Errorf("%s: TEMPLATE: %v", modelfile, err)
	}
	var chats [][]message
	if err := json.NewDecoder(os.Stdin).Decode(&chats); err != nil {
		return fmt.Errorf("stdin: %v", err)
	}
	out := make([]string, len(chats))
	for i, c := range chats {
		if out[i], err = execute(t, c); err != nil {
			return fmt.Errorf("%s: chat %d: %v", modelfile, i, err)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
