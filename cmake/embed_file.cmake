# Writes IN as a NUL-terminated C char array named SYMBOL into OUT.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," content ${content})
file(WRITE ${OUT} "/* generated from ${IN}: do not edit */\nconst char ${SYMBOL}[] = {${content} 0x00};\n")
