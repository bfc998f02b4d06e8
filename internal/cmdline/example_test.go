package cmdline_test

import (
	"fmt"

	"github.com/kilnbatch/kiln/internal/cmdline"
)

func ExampleSplit() {
	args, err := cmdline.Split(`/bin/sh -c 'echo $HOME && ls' "it's" a|b`)
	if err != nil {
		panic(err)
	}
	for _, a := range args {
		fmt.Printf("%q\n", a)
	}
	// Output:
	// "/bin/sh"
	// "-c"
	// "echo $HOME && ls"
	// "it's"
	// "a|b"
}

func ExampleJoin() {
	fmt.Println(cmdline.Join([]string{"echo", "it's", "", "a b"}))
	// Output: echo 'it'\''s' '' 'a b'
}
