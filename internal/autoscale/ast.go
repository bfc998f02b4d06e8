package autoscale

// expr is a parsed expression. Each node keeps its source position so that
// runtime errors can point at it the way Azure's messages do.
type expr interface{ at() pos }

type (
	numberLit struct {
		p pos
		v float64
	}
	stringLit struct {
		p pos
		v string
	}
	// ident is a variable, a TimeInterval_ constant, or a bare
	// $NodeDeallocationOption keyword such as taskcompletion.
	ident struct {
		p    pos
		name string
	}
	unary struct {
		p  pos
		op string
		x  expr
	}
	binary struct {
		p    pos
		op   string
		l, r expr
	}
	ternary struct {
		p               pos
		cond, then, els expr
	}
	call struct {
		p    pos
		name string
		args []expr
	}
	// field reads a timestamp member: t.hour.
	field struct {
		p    pos
		x    expr
		name string
	}
	// method calls a sample method on a service variable: $CPUPercent.GetSample(...).
	method struct {
		p    pos
		v    *ident
		name string
		args []expr
	}
)

func (e *numberLit) at() pos { return e.p }
func (e *stringLit) at() pos { return e.p }
func (e *ident) at() pos     { return e.p }
func (e *unary) at() pos     { return e.p }
func (e *binary) at() pos    { return e.p }
func (e *ternary) at() pos   { return e.p }
func (e *call) at() pos      { return e.p }
func (e *field) at() pos     { return e.p }
func (e *method) at() pos    { return e.p }

// statement is "name = expr" or a bare expression (target == "").
type statement struct {
	p      pos
	target string
	x      expr
}
