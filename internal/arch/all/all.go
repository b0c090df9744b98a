// Package all registers every architecture family lmood supports. Import
// it for its side effect wherever models are converted or opened:
//
//	import _ "github.com/lmood/lmood/internal/arch/all"
package all

import (
	_ "github.com/lmood/lmood/internal/arch/gemma2" // gemma2
	_ "github.com/lmood/lmood/internal/arch/gemma3" // gemma3
	_ "github.com/lmood/lmood/internal/arch/gpt2"   // gpt2
	_ "github.com/lmood/lmood/internal/arch/llama"  // llama, qwen2
	_ "github.com/lmood/lmood/internal/arch/phi3"   // phi3
	_ "github.com/lmood/lmood/internal/arch/qwen3"  // qwen3
)
