package server

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// confFile is one file of a `nginx -T` dump.
type confFile struct {
	Path string // as nginx names it in the dump
	Text string
}

// dumpHeader starts each file of a `nginx -T` dump, on a line of its own:
//
//	# configuration file /etc/nginx/nginx.conf:
const dumpHeader = "# configuration file "

// splitDump splits what `nginx -T` printed on stdout into its files, the
// main file first. nginx prints each file it parsed once, after a header
// line, as it read it.
func splitDump(out string) ([]confFile, error) {
	var files []confFile
	var text strings.Builder
	flush := func() {
		if len(files) > 0 {
			files[len(files)-1].Text = text.String()
		}
		text.Reset()
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		h := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(h, dumpHeader) && strings.HasSuffix(h, ":") && len(h) > len(dumpHeader)+1 {
			flush()
			files = append(files, confFile{Path: h[len(dumpHeader) : len(h)-1]})
			continue
		}
		if len(files) == 0 {
			if strings.TrimSpace(line) != "" {
				return nil, fmt.Errorf("%w: nginx -T printed %q before any %q line", ErrNginxConf, proc.Truncate([]byte(line), 60), dumpHeader)
			}
			continue
		}
		text.WriteString(line)
	}
	flush()
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: nginx -T printed no configuration file", ErrNginxConf)
	}
	return files, nil
}

// directive is one simple or block directive of an nginx configuration.
type directive struct {
	Name string
	Args []string // unquoted
	// Context is the enclosing blocks, outermost first: nil for the main
	// context, ["http", "server"] for a listen.
	Context []string
	Line    int // where the directive's name is, 1-based
}

// parseConf reads the directives of one nginx configuration file, in
// order, as nginx's own tokenizer does (ngx_conf_read_token): words
// separated by spaces, ";" ending a directive, "{" and "}" around a block,
// "#" starting a comment at the start of a word, "..." and '...' quoting
// with backslash escapes.
func parseConf(text string) ([]directive, error) {
	p := confParser{text: text, line: 1}
	return p.parse()
}

type confParser struct {
	text    string
	pos     int
	line    int
	words   []string
	start   int // line of words[0]
	context []string
	out     []directive
}

func (p *confParser) parse() ([]directive, error) {
	for p.pos < len(p.text) {
		c := p.text[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.text) && p.text[p.pos] != '\n' {
				p.pos++
			}
		case c == ';' || c == '{':
			if len(p.words) == 0 {
				return nil, p.errorf("unexpected %q", c)
			}
			p.out = append(p.out, directive{Name: p.words[0], Args: p.words[1:], Context: slices.Clone(p.context), Line: p.start})
			if c == '{' {
				p.context = append(p.context, p.words[0])
			}
			p.words = nil
			p.pos++
		case c == '}':
			if len(p.words) > 0 || len(p.context) == 0 {
				return nil, p.errorf("unexpected \"}\"")
			}
			p.context = p.context[:len(p.context)-1]
			p.pos++
		default:
			if err := p.word(); err != nil {
				return nil, err
			}
		}
	}
	if len(p.words) > 0 {
		return nil, p.errorf("directive %q is not terminated by \";\"", p.words[0])
	}
	if len(p.context) > 0 {
		return nil, p.errorf("block %q is not closed by \"}\"", p.context[len(p.context)-1])
	}
	return p.out, nil
}

// word reads one word, quoted or not, at pos.
func (p *confParser) word() error {
	if len(p.words) == 0 {
		p.start = p.line
	}
	var b strings.Builder
	quote := byte(0)
	if c := p.text[p.pos]; c == '"' || c == '\'' {
		quote = c
		p.pos++
	}
	for p.pos < len(p.text) {
		c := p.text[p.pos]
		switch {
		case quote != 0 && c == quote:
			p.pos++
			p.words = append(p.words, b.String())
			return nil
		case quote == 0 && strings.IndexByte(" \t\r\n;{}", c) >= 0:
			p.words = append(p.words, b.String())
			return nil
		case c == '\\' && p.pos+1 < len(p.text):
			p.pos++
			c = p.text[p.pos]
			switch c {
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			case 'n':
				c = '\n'
			}
		case c == '\n':
			p.line++
		}
		b.WriteByte(c)
		p.pos++
	}
	if quote != 0 {
		return p.errorf("unterminated %c quote", quote)
	}
	p.words = append(p.words, b.String())
	return nil
}

func (p *confParser) errorf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, a...))
}

// maxIncludeDepth bounds include nesting (nginx has no bound: a loop would
// never end there either).
const maxIncludeDepth = 16

// mainDirectives returns the directives of the main context of a dump,
// with includes in the main context expanded in place (nginx resolves a
// relative include against the main file's directory and reads a glob's
// matches in sorted order).
func mainDirectives(files []confFile) ([]directive, error) {
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = f.Text
	}
	confDir := filepath.Dir(files[0].Path)
	var expand func(path, text string, depth int) ([]directive, error)
	expand = func(path, text string, depth int) ([]directive, error) {
		ds, err := parseConf(text)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNginxConf, path, err)
		}
		var out []directive
		for _, d := range ds {
			if len(d.Context) > 0 {
				continue
			}
			if d.Name != "include" {
				out = append(out, d)
				continue
			}
			if len(d.Args) != 1 || depth >= maxIncludeDepth {
				return nil, fmt.Errorf("%w: %s line %d: include %v", ErrNginxConf, path, d.Line, d.Args)
			}
			for _, inc := range includedFiles(files, confDir, d.Args[0]) {
				sub, err := expand(inc, byPath[inc], depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, sub...)
			}
		}
		return out, nil
	}
	return expand(files[0].Path, files[0].Text, 0)
}

// includedFiles returns the dumped files an include pattern names, sorted.
func includedFiles(files []confFile, confDir, pattern string) []string {
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(confDir, pattern)
	}
	var out []string
	for _, f := range files[1:] {
		if ok, err := filepath.Match(pattern, f.Path); ok && err == nil && !slices.Contains(out, f.Path) {
			out = append(out, f.Path)
		}
	}
	slices.Sort(out)
	return out
}

// nginxBuild is what `nginx -V` reports of the compiled-in defaults.
type nginxBuild struct {
	Version  string            // "nginx/1.22.1"
	Options  map[string]string // configure options with a value: "prefix" -> "/usr/share/nginx"
	Prefix   string            // --prefix, or nginx's default
	PidPath  string            // --pid-path, or nginx's default (maybe relative to Prefix)
	ErrorLog string            // --error-log-path, or nginx's default (maybe relative, or "stderr")
}

// parseBuild parses `nginx -V` (printed on stderr), e.g.
//
//	nginx version: nginx/1.22.1
//	configure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx --pid-path=/run/nginx.pid
func parseBuild(out string) (nginxBuild, error) {
	b := nginxBuild{Options: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "nginx version: "); ok {
			b.Version = v
		}
		if v, ok := strings.CutPrefix(line, "configure arguments:"); ok {
			words, err := shellWords(v)
			if err != nil {
				return b, fmt.Errorf("%w: nginx -V configure arguments: %w", ErrNginxConf, err)
			}
			for _, w := range words {
				if k, val, ok := strings.Cut(strings.TrimPrefix(w, "--"), "="); ok && strings.HasPrefix(w, "--") {
					b.Options[k] = val
				}
			}
		}
	}
	if b.Version == "" {
		return b, fmt.Errorf("%w: nginx -V printed no \"nginx version:\" line: %q", ErrNginxConf, proc.Truncate([]byte(out), 80))
	}
	// nginx's auto/options defaults.
	b.Prefix = cmp.Or(b.Options["prefix"], "/usr/local/nginx")
	b.PidPath = cmp.Or(b.Options["pid-path"], "logs/nginx.pid")
	b.ErrorLog = cmp.Or(b.Options["error-log-path"], "logs/error.log")
	return b, nil
}

// shellWords splits s on spaces, honouring '...' and "..." quoting as the
// shell that printed nginx's configure arguments would.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
