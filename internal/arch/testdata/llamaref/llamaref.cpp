// llamaref: llama.cpp as a reference forward pass for lmood's tests.
//
//   llamaref -m MODEL.gguf -ids 1,2,3 [-t THREADS] [-o OUT.bin] [-v]
//
// Loads the GGUF with llama.cpp (CPU only), evaluates the token IDs as one
// sequence in a single batch with logits requested at every position, and
// writes the logits as T×V little-endian float32 (position-major) to OUT
// (default stdout). The vocabulary size V goes to stderr as "n_vocab V".
//
// The KV cache is kept in float32 and flash attention is off, so that on a
// model with float32 weights the only differences from an exact forward pass
// are float32 rounding (llama.cpp's defaults store K and V in float16).
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static bool verbose = false;

// log_cb drops llama.cpp's chatter unless -v, keeping warnings and errors.
static void log_cb(enum ggml_log_level level, const char * text, void *) {
    if (verbose || level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

static int usage(const char * msg) {
    fprintf(stderr, "llamaref: %s\nusage: llamaref -m MODEL.gguf -ids 1,2,3 [-t THREADS] [-o OUT.bin] [-v]\n", msg);
    return 2;
}

int main(int argc, char ** argv) {
    std::string model_path, out_path, ids_arg;
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        bool has_val = i + 1 < argc;
        if (a == "-m" && has_val) {
            model_path = argv[++i];
        } else if (a == "-ids" && has_val) {
            ids_arg = argv[++i];
        } else if (a == "-t" && has_val) {
            threads = atoi(argv[++i]);
        } else if (a == "-o" && has_val) {
            out_path = argv[++i];
        } else if (a == "-v") {
            verbose = true;
        } else {
            return usage(("unknown or incomplete argument " + a).c_str());
        }
    }
    if (model_path.empty() || ids_arg.empty() || threads < 1) {
        return usage("-m, -ids and a positive -t are required");
    }
    std::vector<llama_token> ids;
    for (const char * p = ids_arg.c_str(); *p;) {
        char * end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0) {
            return usage(("bad token id list " + ids_arg).c_str());
        }
        ids.push_back((llama_token) v);
        p = *end == ',' ? end + 1 : end;
    }
    const int T = (int) ids.size();

    llama_log_set(log_cb, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) {
        fprintf(stderr, "llamaref: llama.cpp could not load %s\n", model_path.c_str());
        return 1;
    }
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (llama_token id : ids) {
        if (id >= V) {
            fprintf(stderr, "llamaref: token id %d is outside the vocabulary (%d)\n", id, V);
            return 1;
        }
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) (T < 16 ? 16 : T);
    cp.n_batch = cp.n_ubatch = (uint32_t) T; // one batch, one physical step
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llamaref: llama.cpp could not create a context\n");
        return 1;
    }

    llama_batch batch = llama_batch_init(T, 0, 1);
    for (int i = 0; i < T; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1; // logits at every position
    }
    batch.n_tokens = T;
    if (int rc = llama_decode(ctx, batch); rc != 0) {
        fprintf(stderr, "llamaref: llama_decode failed (%d)\n", rc);
        return 1;
    }

    FILE * out = out_path.empty() ? stdout : fopen(out_path.c_str(), "wb");
    if (!out) {
        fprintf(stderr, "llamaref: cannot create %s\n", out_path.c_str());
        return 1;
    }
    for (int i = 0; i < T; i++) {
        const float * row = llama_get_logits_ith(ctx, i);
        // x86 and arm64 are little-endian: the floats are written as they lie.
        if (!row || fwrite(row, sizeof(float), (size_t) V, out) != (size_t) V) {
            fprintf(stderr, "llamaref: no logits for position %d\n", i);
            return 1;
        }
    }
    if (out != stdout && fclose(out) != 0) {
        fprintf(stderr, "llamaref: writing %s failed\n", out_path.c_str());
        return 1;
    }
    fprintf(stderr, "n_vocab %d\n", V);

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
