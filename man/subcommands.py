#!/usr/bin/env python3
"""help2man include text for a program with subcommands (kms-replay): one [COMMANDS] section with a
subsection per subcommand, made from `PROGRAM SUBCOMMAND --help` (CLI11's layout), so that the manual
page lists every subcommand's options and cannot drift from the program.

usage: subcommands.py PROGRAM OUTPUT SUBCOMMAND...
"""
import os
import re
import subprocess
import sys


def roff(text):
    """Escapes text for a roff line: backslashes, hyphens and a leading control character."""
    text = text.replace('\\', '\\e').replace('-', '\\-')
    return '\\&' + text if text[:1] in ('.', "'") else text


def option_head(spec):
    """`-c,--config TEXT` -> bold option names, the value placeholder in italics."""
    names, _, rest = spec.partition(' ')
    bold = ', '.join('\\fB%s\\fR' % roff(n) for n in names.split(','))
    return bold + (' \\fI%s\\fR' % roff(rest) if rest else '')


def entries(lines):
    """CLI11 help entries: (spec, description) from `  spec   description` lines, where a long spec
    puts the description on the next, more indented line."""
    out = []
    for line in lines:
        if not line.strip():
            continue
        m = re.match(r'^  (\S.*?)(?:\s{2,}(\S.*))?$', line)
        if m and not line.startswith(' ' * 10):
            out.append([m.group(1), m.group(2) or ''])
        elif out:
            out[-1][1] = (out[-1][1] + ' ' + line.strip()).strip()
    return out


def section(program, sub):
    p = subprocess.run([program, sub, '--help'], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit('%s %s --help: exit %d\n%s' % (program, sub, p.returncode, p.stderr))
    lines = p.stdout.splitlines()
    name = os.path.basename(program)
    summary, usage, blocks, current = lines[0].strip(), '', {}, None
    for line in lines[1:]:
        if line.startswith('Usage:'):
            # CLI11 prints argv[0]; the page shows the installed name.
            usage = re.sub(r'^Usage:\s+\S+', name, line)
        elif re.match(r'^\S.*:$', line):
            current = line[:-1]
            blocks[current] = []
        elif current:
            blocks[current].append(line)
    out = ['.SS "%s"' % roff(usage), roff(summary)]
    for title in ('Positionals', 'Options'):
        for spec, text in entries(blocks.get(title, [])):
            # CLI11 appends "Excludes: --other" to the option's name column; it belongs to the text.
            spec, _, excludes = spec.partition(' Excludes: ')
            if excludes:
                text += ' (not with %s)' % excludes
            out += ['.TP', option_head(spec), roff(text)]
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    program, output, subs = sys.argv[1], sys.argv[2], sys.argv[3:]
    text = ['[COMMANDS]']
    for sub in subs:
        text += section(program, sub)
    with open(output, 'w') as f:
        f.write('\n'.join(text) + '\n')


if __name__ == '__main__':
    main()
