// test_chat.c: ChatML rendering, and the default system prompt read from SmolLM2's template.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/chat.h"

static const char *SMOL =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static void test_default_system_inserted(void **state) {
    (void)state;
    chat_msg m[] = {{"user", "Hi"}};
    char *s = chat_render(SMOL, m, 1, 1);
    assert_string_equal(s,
                        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(s);
}

static void test_explicit_system_kept(void **state) {
    (void)state;
    chat_msg m[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}};
    char *s = chat_render(SMOL, m, 3, 0);
    assert_string_equal(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\nHello<|im_end|>\n");
    free(s);
}

static void test_no_template_no_default(void **state) {
    (void)state;
    chat_msg m[] = {{"user", "x"}};
    char *s = chat_render(NULL, m, 1, 0);
    assert_string_equal(s, "<|im_start|>user\nx<|im_end|>\n");
    free(s);
    // A template whose system turn is an expression has no literal default.
    assert_null(chat_default_system("{{'<|im_start|>system\n' + message['content'] + '<|im_end|>'}}"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_system_inserted),
        cmocka_unit_test(test_explicit_system_kept),
        cmocka_unit_test(test_no_template_no_default),
    };
    return cmocka_run_group_tests_name("chat", tests, NULL, NULL);
}
