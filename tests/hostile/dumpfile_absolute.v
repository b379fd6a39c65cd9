// Waveform dump to an absolute path.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  initial begin
    $dumpfile("@CANARY_DIR@/pwned.vcd");
    $dumpvars;
  end
  assign y = a ^ b;
endmodule
