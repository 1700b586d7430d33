// A horizontal bar chart as a standalone SVG, for bench results (no charting library needed).
export function barChartSvg(title: string, bars: Array<{ label: string; value: number; note?: string }>): string {
  const width = 820;
  const labelWidth = 250;
  const barHeight = 26;
  const gap = 10;
  const top = 50;
  const max = Math.max(...bars.map((b) => b.value), 1);
  const plot = width - labelWidth - 140;
  const height = top + bars.length * (barHeight + gap) + 20;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const rows = bars
    .map((b, i) => {
      const y = top + i * (barHeight + gap);
      const w = Math.max(1, (b.value / max) * plot);
      return [
        `<text x="${labelWidth - 10}" y="${y + 18}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${i === 0 ? '#9aa5b1' : '#3b82f6'}"/>`,
        `<text x="${(labelWidth + w + 8).toFixed(1)}" y="${y + 18}">${b.value.toLocaleString('en-US')}${b.note ? ` (${esc(b.note)})` : ''}</text>`,
      ].join('');
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="28" font-size="15" font-weight="bold">${esc(title)}</text>
${rows}
</svg>
`;
}
